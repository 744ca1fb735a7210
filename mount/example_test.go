package mount_test

import (
	"context"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/doozerfs/doozerfs/mount"
	"github.com/doozerfs/doozerfs/wire"
)

// What `doozerfs mount /mnt/dz --addr … --root /app` does: follow the
// cluster in memory and serve it until SIGINT or SIGTERM.
func ExampleNewMirror() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	dial, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := wire.Dial(dial, []string{"10.0.0.1:8046", "10.0.0.2:8046"}, wire.Options{Name: "doozerfs-mount"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	mirror, err := mount.NewMirror(dial, c, mount.MirrorOptions{Root: "/app"})
	if err != nil {
		log.Fatal(err)
	}
	defer mirror.Close()

	opts := mount.DefaultOptions()
	opts.Root = "/app"
	opts.AllowOther = true
	m, err := mount.Mount("/mnt/dz", mirror, opts) // clears a stale mount first
	if err != nil {
		log.Fatal(err)
	}
	select {
	case <-ctx.Done(): // SIGINT, SIGTERM
	case <-m.Done(): // unmounted by someone else
	}
	if err := m.Close(); err != nil {
		log.Print(err)
	}
}
