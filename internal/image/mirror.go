package image

import (
	"bufio"
	"bytes"
	"os"
	"slices"
	"strings"
)

// Where apt on a Debian host keeps its sources, in the order they are
// consulted, and the mirror used when neither names the suite.
const (
	debianSources = "/etc/apt/sources.list.d/debian.sources"
	sourcesList   = "/etc/apt/sources.list"
	defaultMirror = "http://deb.debian.org/debian"
)

// mirrorFor returns the first mirror URI that the given apt source files
// configure for suite, or defaultMirror. Files ending in ".sources" are read
// as deb822, all others in the one-line format; unreadable files are
// skipped. Using the host's mirror keeps the build working on machines that
// can reach only a local or proxied mirror.
func mirrorFor(suite string, files ...string) string {
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var uri string
		if strings.HasSuffix(f, ".sources") {
			uri = deb822Mirror(data, suite)
		} else {
			uri = oneLineMirror(data, suite)
		}
		if uri != "" {
			return uri
		}
	}
	return defaultMirror
}

// deb822Mirror scans deb822 stanzas for an enabled "deb" entry whose Suites
// include suite and returns its first usable URI.
func deb822Mirror(data []byte, suite string) string {
	for _, stanza := range deb822Stanzas(data) {
		if strings.EqualFold(stanza["enabled"], "no") ||
			!slices.Contains(strings.Fields(stanza["types"]), "deb") ||
			!slices.Contains(strings.Fields(stanza["suites"]), suite) {
			continue
		}
		for _, uri := range strings.Fields(stanza["uris"]) {
			if usableMirror(uri) {
				return uri
			}
		}
	}
	return ""
}

// deb822Stanzas splits deb822 text into stanzas of lower-cased field names
// to values, joining continuation lines and dropping comments.
func deb822Stanzas(data []byte) []map[string]string {
	var stanzas []map[string]string
	cur, last := map[string]string{}, ""
	flush := func() {
		if len(cur) > 0 {
			stanzas = append(stanzas, cur)
		}
		cur, last = map[string]string{}, ""
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
			flush()
		case strings.HasPrefix(line, "#"):
		case line[0] == ' ' || line[0] == '\t':
			if last != "" {
				cur[last] += " " + strings.TrimSpace(line)
			}
		default:
			key, value, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			last = strings.ToLower(strings.TrimSpace(key))
			cur[last] = strings.TrimSpace(value)
		}
	}
	flush()
	return stanzas
}

// oneLineMirror scans sources.list lines ("deb [opts] URI SUITE COMP...")
// for a "deb" entry of suite and returns its URI.
func oneLineMirror(data []byte, suite string) string {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != "deb" {
			continue
		}
		fields = skipOptions(fields[1:])
		if len(fields) >= 2 && fields[1] == suite && usableMirror(fields[0]) {
			return fields[0]
		}
	}
	return ""
}

// skipOptions drops a leading "[ ... ]" option block, which may itself
// contain spaces.
func skipOptions(fields []string) []string {
	if len(fields) == 0 || !strings.HasPrefix(fields[0], "[") {
		return fields
	}
	for i, f := range fields {
		if strings.HasSuffix(f, "]") {
			return fields[i+1:]
		}
	}
	return nil
}

// usableMirror rejects URIs mmdebstrap cannot fetch from unattended.
func usableMirror(uri string) bool {
	return uri != "" && !strings.HasPrefix(uri, "cdrom:")
}
