//go:build linux

package archive

import "testing"

func TestDiskUsage(t *testing.T) {
	free, size, err := DiskUsage(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if size == 0 || free > size {
		t.Fatalf("free=%d size=%d", free, size)
	}
	if _, _, err := DiskUsage(t.TempDir() + "/missing"); err == nil {
		t.Fatal("want error for missing dir")
	}
}
