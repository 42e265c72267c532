//go:build !linux

package egresstest

import "errors"

func inNamespace(string, func() error) error {
	return errors.New("network namespaces need Linux")
}
