package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// The functions routes: a thin layer over sdk.Functions (docs/design.md §3).

func (s *Server) listFunctions(ctx context.Context, c *call) error {
	return reply(s, ctx, c, "functions", func(ctx context.Context) (any, error) {
		fns, err := c.client.Functions().List(ctx)
		return map[string]any{"functions": fns}, err
	})
}

func (s *Server) getFunction(ctx context.Context, c *call) error {
	name, p := functionNameOf(c.r)
	if p != nil {
		return p
	}
	return reply(s, ctx, c, "function "+name, func(ctx context.Context) (*sdk.FunctionInfo, error) {
		return c.client.Functions().Get(ctx, name)
	})
}

// putFunction deploys the tenant's own function {name}; the body's name
// may be left out, else must be {name}.
func (s *Server) putFunction(ctx context.Context, c *call) error {
	name, p := functionNameOf(c.r)
	if p != nil {
		return p
	}
	data, p := s.readBody(c, schema.MaxFunctionBytes)
	if p != nil {
		return p
	}
	fn, err := schema.DecodeFunction(withKey(data, "name", name))
	var fe *schema.FieldError
	switch {
	case errors.Is(err, schema.ErrTooLarge):
		return tooLarge(schema.MaxFunctionBytes)
	case errors.As(err, &fe):
		return problem(http.StatusBadRequest, TypeInvalidFunction, "invalid function: %v", err).withField(fe.Field)
	case err != nil:
		return problem(http.StatusBadRequest, TypeInvalidFunction, "invalid function: %v", err)
	case fn.Name != name:
		return problem(http.StatusBadRequest, TypeInvalidFunction, "name %q is not the path's %q", clipText(fn.Name), name).withField("name")
	}
	return reply(s, ctx, c, "function "+name, func(ctx context.Context) (*sdk.FunctionInfo, error) {
		return c.client.Functions().Deploy(ctx, *fn)
	})
}

func (s *Server) deleteFunction(ctx context.Context, c *call) error {
	name, p := functionNameOf(c.r)
	if p != nil {
		return p
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.AskTimeout)
	defer cancel()
	if err := c.client.Functions().Delete(ctx, name); err != nil {
		return asProblem(err, "function "+name)
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

// functionNameOf reads the {name} of the path.
func functionNameOf(r *http.Request) (string, *Problem) {
	name := r.PathValue("name")
	if !schema.ValidName(name) {
		return "", invalidRequest("name", "function name %q: 1-64 characters of A-Z a-z 0-9 _ - starting with a letter or digit", clipText(name))
	}
	return name, nil
}
