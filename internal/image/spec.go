package image

import (
	"fmt"
	"regexp"

	"github.com/distribution/reference"
)

// Spec describes one sandbox image.
type Spec struct {
	// Name is the short name used by `brig image build NAME` and written to
	// the image's brig.image label, e.g. "python".
	Name string
	// Ref is the local image reference the build is tagged with, e.g.
	// "brig/python:latest".
	Ref string
	// Suite is the Debian suite the rootfs is built from, e.g. "bookworm".
	Suite string
	// Packages are installed on top of Debian's Essential set.
	Packages []string
}

// Known returns the built-in specs. Each call returns fresh values, so
// callers may change what they get back.
func Known() []Spec {
	return []Spec{{
		Name:     "python",
		Ref:      "brig/python:latest",
		Suite:    "bookworm",
		Packages: []string{"python3"},
	}}
}

// Lookup finds a known spec by Name or by Ref. A ref without a tag means
// ":latest", so "brig/python" and "brig/python:latest" both find "python".
func Lookup(name string) (Spec, bool) {
	ref := normalizeRef(name)
	for _, s := range Known() {
		if name == s.Name || name == s.Ref || (ref != "" && ref == normalizeRef(s.Ref)) {
			return s, true
		}
	}
	return Spec{}, false
}

// normalizeRef returns ref in its familiar form with a tag ("brig/python"
// becomes "brig/python:latest"), or "" if ref is not an image reference.
func normalizeRef(ref string) string {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ""
	}
	return reference.FamiliarString(reference.TagNameOnly(named))
}

var (
	specNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	suiteRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]*$`)
	// Debian policy §5.6.7, plus an optional ":arch".
	debPackageRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?$`)
)

// validate rejects specs that would produce a broken image or odd
// mmdebstrap arguments, before anything is started.
func (s Spec) validate() error {
	if !specNameRE.MatchString(s.Name) {
		return fmt.Errorf("image spec %q: name must match %s", s.Name, specNameRE)
	}
	if _, err := reference.ParseNormalizedNamed(s.Ref); err != nil {
		return fmt.Errorf("image spec %q: ref %q: %w", s.Name, s.Ref, err)
	}
	if !suiteRE.MatchString(s.Suite) {
		return fmt.Errorf("image spec %q: suite %q is not a Debian suite name", s.Name, s.Suite)
	}
	if len(s.Packages) == 0 {
		return fmt.Errorf("image spec %q: no packages", s.Name)
	}
	for _, p := range s.Packages {
		if !debPackageRE.MatchString(p) {
			return fmt.Errorf("image spec %q: %q is not a Debian package name", s.Name, p)
		}
	}
	return nil
}
