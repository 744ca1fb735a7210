package mount

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/doozerfs/doozerfs/mount/internal/teststore"
)

func TestScratchTrace(t *testing.T) {
	if os.Getenv("SCRATCH") == "" {
		t.Skip()
	}
	var mu sync.Mutex
	var lines []string
	debugFUSE = func(msg any) {
		s := fmt.Sprint(msg)
		if strings.Contains(s, "security.") || strings.Contains(s, "Statfs") || strings.HasPrefix(s, "->") {
			return
		}
		mu.Lock()
		lines = append(lines, s)
		mu.Unlock()
	}
	defer func() { debugFUSE = nil }()
	s := teststore.New()
	m := mountAt(t, s, DefaultOptions())
	s.Set("/f", []byte("hello\n"))
	s.Set("/src", []byte("source\n"))
	caughtUp(t, m)
	mu.Lock()
	lines = nil
	mu.Unlock()
	out, err := run(t, m.Dir(), "bash", "-c", os.Getenv("SCRATCH"))
	t.Logf("out=%q err=%v", out, err)
	quiesce(t, m)
	mu.Lock()
	for _, l := range lines {
		t.Log(l)
	}
	mu.Unlock()
	t.Logf("rev %d", s.Rev())
}
