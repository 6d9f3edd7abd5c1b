package report

import (
	"testing"
	"time"
)

// FuzzParseMonth: --month and --tz as a user gives them. A month that
// parses has bounds one calendar month apart in its zone, starting on the
// 1st at midnight, within the times the archive stores.
func FuzzParseMonth(f *testing.F) {
	for _, s := range [][2]string{{"2026-01", "UTC"}, {"previous", "Asia/Seoul"}, {"1677-10", "UTC"}, {"2262-03", "Pacific/Kiritimati"},
		{"2026-13", "UTC"}, {"0000-01", "America/Sao_Paulo"}, {"2026-1", "Local"}, {"9999-12", "Etc/GMT+12"}} {
		f.Add(s[0], s[1], int64(1767225600))
	}
	f.Fuzz(func(t *testing.T, month, tz string, nowUnix int64) {
		loc, err := time.LoadLocation(tz)
		if err != nil {
			return
		}
		now := time.Unix(nowUnix%(1<<33), 0)
		m, err := ParseMonth(month, loc, now)
		if err != nil {
			if month != "previous" {
				return
			}
			t.Fatalf("previous of %s in %s: %v", now, tz, err)
		}
		if m.Day() != 1 || m.Hour() != 0 || m.Minute() != 0 || m.Location() != loc {
			t.Fatalf("%q in %s: %s is not the start of a month in its zone", month, tz, m)
		}
		from, to := Bounds(m, loc)
		if !from.Before(to) || !from.Equal(m) || !to.Equal(m.AddDate(0, 1, 0)) {
			t.Fatalf("%q in %s: bounds %s .. %s for %s", month, tz, from, to, m)
		}
		if month != "previous" && (from.Before(firstStorable) || to.Add(-1).After(lastStorable)) {
			t.Fatalf("%q in %s: bounds %s .. %s outside the archive's times", month, tz, from, to)
		}
	})
}
