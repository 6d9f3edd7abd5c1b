package daemon

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/metrics.md")

const metricsDoc = "../../docs/metrics.md"

// TestMetricsDocUpToDate fails when docs/metrics.md does not list exactly the
// metrics the daemon registers (`make metrics-docs` regenerates it).
func TestMetricsDocUpToDate(t *testing.T) {
	got, err := MetricsMarkdown()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(metricsDoc, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(metricsDoc)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != got {
		t.Fatalf("docs/metrics.md is stale: run `make metrics-docs`\n--- generated:\n%s", got)
	}
	for _, name := range []string{"flowaudit_pipeline_flows_kept_total", "flowaudit_archive_commit_duration_seconds", "flowaudit_ingest_lag_bytes", "flowaudit_source_up", "flowaudit_build_info"} {
		if !strings.Contains(got, "`"+name+"`") {
			t.Errorf("%s missing", name)
		}
	}
	for _, line := range strings.Split(got, "\n") {
		if strings.HasPrefix(line, "| `") && strings.Contains(line, "| untyped |") {
			t.Errorf("metric without a type: %s", line)
		}
	}
}
