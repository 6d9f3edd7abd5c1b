package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
)

var jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()

// checkTree reports every unknown key and every value that does not decode
// in v (a YAML document as JSON, decoded generically) against type t, each
// with its key path, so that a config file's problems are listed at once
// rather than the first one a strict decoder stops at. Keys match fields
// as encoding/json matches them (case-insensitively).
func checkTree(path string, v any, t reflect.Type, errs *[]error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if v == nil {
		return // null: the zero value, as the decoder does
	}
	leaf := reflect.PointerTo(t).Implements(jsonUnmarshaler) ||
		(t.Kind() != reflect.Struct && t.Kind() != reflect.Map && (t.Kind() != reflect.Slice || t.Elem().Kind() == reflect.Uint8))
	if leaf {
		b, _ := json.Marshal(v)
		if err := json.Unmarshal(b, reflect.New(t).Interface()); err != nil {
			*errs = append(*errs, fmt.Errorf("%s: %s: %v", path, abbrev(b), cleanJSONError(err)))
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			if path == "" {
				path = "the file"
			}
			*errs = append(*errs, fmt.Errorf("%s: want a mapping of keys", path))
			return
		}
		fields := map[string]reflect.Type{}
		collectFields(t, fields)
		for _, k := range slices.Sorted(maps.Keys(m)) {
			ft, ok := fields[strings.ToLower(k)]
			if !ok {
				*errs = append(*errs, fmt.Errorf("%s: unknown key", joinKey(path, k)))
				continue
			}
			checkTree(joinKey(path, k), m[k], ft, errs)
		}
	case reflect.Slice:
		a, ok := v.([]any)
		if !ok {
			*errs = append(*errs, fmt.Errorf("%s: want a list", path))
			return
		}
		for i, e := range a {
			checkTree(fmt.Sprintf("%s[%d]", path, i), e, t.Elem(), errs)
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			*errs = append(*errs, fmt.Errorf("%s: want a mapping", path))
			return
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			checkTree(joinKey(path, k), m[k], t.Elem(), errs)
		}
	}
}

// collectFields maps the lower-cased JSON names of t's fields (embedded
// structs' included) to their types.
func collectFields(t reflect.Type, out map[string]reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		if f.Anonymous && name == "" {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				collectFields(ft, out)
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		out[strings.ToLower(name)] = f.Type
	}
}

func joinKey(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// abbrev is a value as the error shows it (JSON, at most 60 bytes).
func abbrev(b []byte) string {
	if len(b) > 60 {
		return string(b[:57]) + "..."
	}
	return string(b)
}

// cleanJSONError drops encoding/json's Go type names from a type mismatch.
func cleanJSONError(err error) string {
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		return "want " + kindName(te.Type)
	}
	return err.Error()
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	default:
		return t.Kind().String()
	}
}
