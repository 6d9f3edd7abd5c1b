package filter

import (
	"context"
	"fmt"
	"reflect"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"github.com/google/cel-go/cel"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

// celFilter: experimental.cel_expression. An expression may read any field,
// so the decoder decodes every field for it.
func celFilter(ff *flowpb.FlowFilter) ([]check, error) {
	exprs := ff.GetExperimental().GetCelExpression()
	if exprs == nil {
		return nil, nil
	}
	t, err := celPred(exprs)
	if err != nil {
		return nil, fmt.Errorf("experimental.cel_expression: %w", err)
	}
	return []check{{match: t, reads: flow.AllFields(), costly: true}}, nil
}

// The CEL environment of pkg/hubble/filters/cel_expression.go: variable _flow
// of type flow.Flow, container "flow", proto field names.
var celEnv = func() *cel.Env {
	env, err := cel.NewEnv(cel.Container("flow"), cel.Types(&flowpb.Flow{}), cel.Variable("_flow", cel.ObjectType("flow.Flow")))
	if err != nil {
		panic(fmt.Sprintf("BUG: cannot create the CEL environment: %v", err))
	}
	return env
}()

var goBool = reflect.TypeOf(false)

// celPred compiles CEL expressions (OR across them). An expression must
// type-check to bool; a runtime error makes it false, as in Cilium. CEL
// evaluation allocates; Hubble documents it as the filter to use last.
func celPred(exprs []string) (pred, error) {
	var prgs []cel.Program
	for _, e := range exprs {
		ast, iss := celEnv.Compile(e)
		if iss.Err() != nil {
			return nil, fmt.Errorf("error compiling CEL expression: %w", iss.Err())
		}
		checked, iss := celEnv.Check(ast)
		if iss.Err() != nil {
			return nil, fmt.Errorf("error compiling CEL expression: %w", iss.Err())
		}
		if checked.OutputType() != cel.BoolType {
			return nil, fmt.Errorf("error compiling CEL expression: got %q, wanted %q result type", checked.OutputType(), cel.BoolType)
		}
		prg, err := celEnv.Program(ast)
		if err != nil {
			return nil, fmt.Errorf("error building CEL program: %w", err)
		}
		prgs = append(prgs, prg)
	}
	return func(f *flowpb.Flow) bool {
		for _, prg := range prgs {
			out, _, err := prg.ContextEval(context.Background(), map[string]any{"_flow": f})
			if err != nil {
				return false
			}
			v, err := out.ConvertToNative(goBool)
			if err != nil {
				return false
			}
			if b, ok := v.(bool); ok && b {
				return true
			}
		}
		return false
	}, nil
}
