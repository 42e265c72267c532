package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/docker/docker/api/types/image"
)

// The image config every sandbox relies on. An imported rootfs has no
// config at all, not even PATH.
const (
	envPath    = "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	envLang    = "ENV LANG=C.UTF-8"
	sandboxUID = "USER 65534:65534"
	workDir    = "WORKDIR /work"
	// labelImage is set to the spec's Name on every image Build makes.
	labelImage = "brig.image"
)

func importChanges(spec Spec) []string {
	return []string{envPath, envLang, sandboxUID, workDir, "LABEL " + labelImage + "=" + spec.Name}
}

// importRootfs uploads the rootfs tar from src as spec.Ref and waits until
// the daemon has stored it.
func importRootfs(ctx context.Context, docker Importer, spec Spec, src io.Reader) error {
	resp, err := docker.ImageImport(ctx,
		image.ImportSource{Source: src, SourceName: "-"},
		spec.Ref,
		image.ImportOptions{
			Message: fmt.Sprintf("brig image build %s: Debian %s + %s (mmdebstrap)", spec.Name, spec.Suite, strings.Join(spec.Packages, ",")),
			Changes: importChanges(spec),
		})
	if err != nil {
		return err
	}
	defer resp.Close()
	return readImportResponse(resp)
}

// importMessage is one line of the daemon's JSON progress stream.
type importMessage struct {
	Status      string `json:"status"`
	Error       string `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
}

// readImportResponse consumes the daemon's reply; the import is complete
// only when the stream ends, and failures arrive inside it as messages.
func readImportResponse(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var m importMessage
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read import response: %w", err)
		}
		if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			return errors.New(m.ErrorDetail.Message)
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
	}
}

// shortID shortens "sha256:0123456789ab..." to "0123456789ab".
func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func orDiscard(progress io.Writer, log *slog.Logger) (io.Writer, *slog.Logger) {
	if progress == nil {
		progress = io.Discard
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return progress, log
}
