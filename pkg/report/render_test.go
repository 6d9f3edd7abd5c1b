package report

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/flowaudit/flowaudit/pkg/archive"
)

func TestFooterNamesTheChainHeadsSafely(t *testing.T) {
	head := strings.Repeat("ab", 32)
	r := &Report{Month: "2026-01", Integrity: &archive.VerifyReport{ChainHeads: map[string]string{
		`evil"}</style><script>alert(1)</script>`: head, "c/node-2": head,
	}}}
	var b bytes.Buffer
	if err := RenderHTML(&b, r, "en"); err != nil {
		t.Fatal(err)
	}
	html := b.String()
	if strings.Contains(html, "<script>") || strings.Count(html, "</style>") != 1 {
		t.Fatalf("a node name escaped the footer's CSS string:\n%s", html[:min(len(html), 2000)])
	}
	if !strings.Contains(html, "c/node-2 "+head[:16]+"…") {
		t.Error("the footer lacks a chain head's first 16 hex digits")
	}
	// Beyond three chains, their number and a digest of the list.
	heads := map[string]string{}
	for i := range 5 {
		heads[fmt.Sprintf("c/node-%d", i)] = head
	}
	r.Integrity.ChainHeads = heads
	footer := footerText(tr("en"), r)
	if !strings.Contains(footer, ": 5, sha256 ") || strings.Contains(footer, head[:16]) {
		t.Errorf("footer of 5 chains: %q", footer)
	}
}
