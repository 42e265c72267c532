package egress

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/network"
)

// The egress network as brig creates it.
const (
	// Network is the name of the Docker network of jobs with a network.
	Network = "brig-egress"
	// Bridge is its bridge interface on the host, which the firewall rules
	// match on.
	Bridge = "brig-egress0"
	// Label marks the network as brig's, with the value LabelValue.
	Label      = "brig.network"
	LabelValue = "egress"
)

// Bridge driver options (moby libnetwork/drivers/bridge).
const (
	optBridgeName = "com.docker.network.bridge.name"
	optICC        = "com.docker.network.bridge.enable_icc"
)

// NetworkAPI is the slice of the Docker Engine API that Ensure uses. The
// Engine API client (*client.Client) is its only real implementation.
type NetworkAPI interface {
	NetworkInspect(ctx context.Context, networkID string, options network.InspectOptions) (network.Inspect, error)
	NetworkCreate(ctx context.Context, name string, options network.CreateOptions) (network.CreateResponse, error)
}

func createOptions() network.CreateOptions {
	ipv6 := false
	return network.CreateOptions{
		Driver:     "bridge",
		EnableIPv6: &ipv6,
		Options:    map[string]string{optBridgeName: Bridge, optICC: "false"},
		Labels:     map[string]string{Label: LabelValue},
	}
}

// ensureNetwork creates the egress network unless it exists, and fails when
// an existing one is not what brig would have created.
func ensureNetwork(ctx context.Context, docker NetworkAPI, log *slog.Logger) error {
	info, err := docker.NetworkInspect(ctx, Network, network.InspectOptions{})
	if err == nil {
		return conforms(info)
	}
	if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("egress: inspect network %s: %w", Network, err)
	}
	resp, err := docker.NetworkCreate(ctx, Network, createOptions())
	if err != nil {
		// Another worker on this host may have created it meanwhile.
		if info, ierr := docker.NetworkInspect(ctx, Network, network.InspectOptions{}); ierr == nil {
			return conforms(info)
		}
		return fmt.Errorf("egress: create network %s: %w", Network, err)
	}
	log.Info("created egress network", "network", Network, "id", resp.ID, "bridge", Bridge)
	return nil
}

// conforms reports how an existing network differs from the one brig
// creates: the firewall rules match on its bridge name, and a network
// with container-to-container traffic or IPv6 would bypass them.
func conforms(info network.Inspect) error {
	var diffs []string
	differ := func(what string, got, want any) {
		if got != want {
			diffs = append(diffs, fmt.Sprintf("%s is %v, want %v", what, got, want))
		}
	}
	differ("name", info.Name, Network)
	differ("driver", info.Driver, "bridge")
	differ("option "+optBridgeName, quoted(info.Options, optBridgeName), fmt.Sprintf("%q", Bridge))
	differ("option "+optICC, quoted(info.Options, optICC), `"false"`)
	differ("IPv6", info.EnableIPv6, false)
	differ("internal", info.Internal, false)
	differ("label "+Label, quoted(info.Labels, Label), fmt.Sprintf("%q", LabelValue))
	if len(diffs) == 0 {
		return nil
	}
	return fmt.Errorf("egress: network %s exists but is not brig's egress network (%s); remove it (docker network rm %s) and brig creates it anew",
		Network, strings.Join(diffs, "; "), Network)
}

// quoted renders m[k] for a message, telling a missing key from an empty
// value.
func quoted(m map[string]string, k string) string {
	v, ok := m[k]
	if !ok {
		return "unset"
	}
	return fmt.Sprintf("%q", v)
}
