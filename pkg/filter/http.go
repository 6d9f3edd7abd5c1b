package filter

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	flowpb "github.com/cilium/cilium/api/v1/flow"
)

var (
	httpStatusCodeFull   = regexp.MustCompile(`^[1-5][0-9]{2}$`)
	httpStatusCodePrefix = regexp.MustCompile(`^[1-5][0-9]?\+$`)
)

// httpFilter: http_status_code, http_method, http_path, http_url and
// http_header, over an L7 HTTP flow. Cilium refuses them with an event_type
// list that cannot match L7 events.
func httpFilter(ff *flowpb.FlowFilter) ([]check, error) {
	compatible := len(ff.GetEventType()) == 0 || slices.ContainsFunc(ff.GetEventType(), func(t *flowpb.EventTypeFilter) bool {
		return t.GetType() == messageTypeAccessLog
	})
	var out []check
	if codes := ff.GetHttpStatusCode(); codes != nil {
		if !compatible {
			return nil, errors.New("http_status_code: filtering by http status code requires the event type filter to only match 'l7' events")
		}
		// Codes are matched on their %03d form; precompute which of 0..999 match.
		var match [1000]bool
		for _, s := range codes {
			switch {
			case httpStatusCodeFull.MatchString(s):
				n, _ := strconv.Atoi(s)
				match[n] = true
			case httpStatusCodePrefix.MatchString(s):
				p := strings.TrimSuffix(s, "+")
				for n := 0; n < 1000; n++ {
					if strings.HasPrefix(fmt.Sprintf("%03d", n), p) {
						match[n] = true
					}
				}
			default:
				return nil, fmt.Errorf("http_status_code: invalid http status code filter: invalid status code prefix: %q", s)
			}
		}
		out = append(out, costly(func(f *flowpb.Flow) bool {
			h := f.GetL7().GetHttp()
			if h == nil || h.Code == 0 {
				return false
			}
			if h.Code < 1000 {
				return match[h.Code]
			}
			// %03d of a code >= 1000 has four or more digits: only prefixes can match.
			s := strconv.FormatUint(uint64(h.Code), 10)
			for _, c := range codes {
				if p, ok := strings.CutSuffix(c, "+"); ok && strings.HasPrefix(s, p) {
					return true
				}
			}
			return false
		}, "l7.http")...)
	}
	if methods := ff.GetHttpMethod(); methods != nil {
		if !compatible {
			return nil, errors.New("http_method: filtering by http method requires the event type filter to only match 'l7' events")
		}
		out = append(out, costly(func(f *flowpb.Flow) bool {
			h := f.GetL7().GetHttp()
			if h == nil || h.Method == "" {
				return false
			}
			for _, m := range methods {
				if strings.EqualFold(h.Method, m) {
					return true
				}
			}
			return false
		}, "l7.http")...)
	}
	if paths := ff.GetHttpPath(); paths != nil {
		if !compatible {
			return nil, errors.New("http_path: filtering by http path requires the event type filter to only match 'l7' events")
		}
		res, err := compileRegexps(paths)
		if err != nil {
			return nil, fmt.Errorf("http_path: invalid http path filter: %w", err)
		}
		out = append(out, costly(func(f *flowpb.Flow) bool {
			h := f.GetL7().GetHttp()
			if h == nil || h.Url == "" {
				return false
			}
			u, err := url.ParseRequestURI(h.Url)
			if err != nil {
				return false
			}
			for _, re := range res {
				if re.MatchString(u.Path) {
					return true
				}
			}
			return false
		}, "l7.http")...)
	}
	if urls := ff.GetHttpUrl(); urls != nil {
		if !compatible {
			return nil, errors.New("http_url: filtering by http url requires the event type filter to only match 'l7' events")
		}
		res, err := compileRegexps(urls)
		if err != nil {
			return nil, fmt.Errorf("http_url: invalid http url filter: %w", err)
		}
		out = append(out, costly(func(f *flowpb.Flow) bool {
			h := f.GetL7().GetHttp()
			if h == nil || h.Url == "" {
				return false
			}
			for _, re := range res {
				if re.MatchString(h.Url) {
					return true
				}
			}
			return false
		}, "l7.http")...)
	}
	if headers := ff.GetHttpHeader(); headers != nil {
		if !compatible {
			return nil, errors.New("http_header: filtering by http headers requires the event type filter to only match 'l7' events")
		}
		out = append(out, costly(func(f *flowpb.Flow) bool {
			h := f.GetL7().GetHttp()
			if h == nil || h.GetHeaders() == nil {
				return false
			}
			for _, fh := range h.GetHeaders() {
				for _, w := range headers {
					if w.Key == fh.Key && w.Value == fh.Value {
						return true
					}
				}
			}
			return false
		}, "l7.http")...)
	}
	return out, nil
}

func compileRegexps(exprs []string) ([]*regexp.Regexp, error) {
	out := make([]*regexp.Regexp, 0, len(exprs))
	for _, e := range exprs {
		re, err := regexp.Compile(e)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e, err)
		}
		out = append(out, re)
	}
	return out, nil
}
