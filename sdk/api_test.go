package sdk

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"strings"
	"testing"
)

// forTests matches what the doc comment of a hook for tests or tools says
// about itself (PublishRaw's said "It exists for tools and tests that
// probe brig's validation").
var forTests = regexp.MustCompile(`(?i)\b(tests|testing|test-only|test hooks?)\b`)

// TestNoTestHooksExported: sdk's exported API is for its users. A hook
// that exists for tests or tools belongs in their own code (a plain NATS
// publish, an internal package), never in sdk's API, where every user
// sees it and it must be kept.
func TestNoTestHooksExported(t *testing.T) {
	t.Parallel()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, e.Name(), nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		for name, doc := range exportedDocs(f) {
			if forTests.MatchString(doc) {
				t.Errorf("%s (%s): exported for tests or tools (its doc: %q); move it out of sdk's API", name, e.Name(), strings.TrimSpace(doc))
			}
		}
	}
}

// exportedDocs maps each exported declaration of f to its doc comment.
func exportedDocs(f *ast.File) map[string]string {
	docs := map[string]string{}
	text := func(groups ...*ast.CommentGroup) string {
		var b strings.Builder
		for _, g := range groups {
			b.WriteString(g.Text())
		}
		return b.String()
	}
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			if d.Name.IsExported() && (d.Recv == nil || exportedRecv(d.Recv)) {
				docs[d.Name.Name] = text(d.Doc)
			}
		case *ast.GenDecl:
			for _, spec := range d.Specs {
				switch s := spec.(type) {
				case *ast.TypeSpec:
					if s.Name.IsExported() {
						docs[s.Name.Name] = text(d.Doc, s.Doc)
					}
				case *ast.ValueSpec:
					for _, n := range s.Names {
						if n.IsExported() {
							docs[n.Name] = text(d.Doc, s.Doc)
						}
					}
				}
			}
		}
	}
	return docs
}

// exportedRecv reports whether a method's receiver type is exported.
func exportedRecv(recv *ast.FieldList) bool {
	typ := recv.List[0].Type
	if star, ok := typ.(*ast.StarExpr); ok {
		typ = star.X
	}
	id, ok := typ.(*ast.Ident)
	return ok && id.IsExported()
}
