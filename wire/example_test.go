package wire_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/wire"
)

// replicas returns the addresses of the cluster the examples talk to: here
// an in-memory fake started for the example; in real use, the replicas'
// --addr values, e.g. []string{"10.0.0.1:8046", "10.0.0.2:8046"}.
func replicas() []string {
	addr, _ := wire.StartFakeReplica()
	return []string{addr}
}

func ExampleClient_Get() {
	ctx := context.Background()
	c, err := wire.Dial(ctx, replicas(), wire.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	c.Set(ctx, "/app/db", fs.Clobber, []byte("postgres://db1\n"))

	body, st, err := c.Get(ctx, "/app/db", 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%q at rev %d\n", body, st.Rev)

	_, _, err = c.Get(ctx, "/app/missing", 0)
	fmt.Println(errors.Is(err, fs.ErrNoEnt))
	// Output:
	// "postgres://db1\n" at rev 1
	// true
}

func ExampleClient_Set() {
	ctx := context.Background()
	c, err := wire.Dial(ctx, replicas(), wire.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// Create only if missing, then compare-and-set on the revision read.
	rev, err := c.Set(ctx, "/app/leader", fs.Missing, []byte("host-a"))
	fmt.Println(rev, err)
	_, err = c.Set(ctx, "/app/leader", fs.Missing, []byte("host-b"))
	fmt.Println(errors.Is(err, fs.ErrRevMismatch))
	rev, err = c.Set(ctx, "/app/leader", rev, []byte("host-b"))
	fmt.Println(rev, err)
	// Output:
	// 1 <nil>
	// true
	// 2 <nil>
}

func ExampleClient_Del() {
	ctx := context.Background()
	c, err := wire.Dial(ctx, replicas(), wire.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	rev, _ := c.Set(ctx, "/tmp/x", fs.Clobber, []byte("1"))

	rev, err = c.Del(ctx, "/tmp/x", rev)
	fmt.Println(rev, err)
	// Output:
	// 2 <nil>
}

func ExampleClient_Watch() {
	ctx := context.Background()
	c, err := wire.Dial(ctx, replicas(), wire.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	w, err := c.Watch(ctx, "/svc/web/*", 0) // from the next revision on
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	c.Set(ctx, "/svc/web/a", fs.Missing, []byte("10.0.0.1:80"))
	c.Del(ctx, "/svc/web/a", fs.Clobber)

	for range 2 {
		ev, err := w.Next(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(ev.Rev, ev.Kind, ev.Path, string(ev.Body))
	}
	// Output:
	// 1 set /svc/web/a 10.0.0.1:80
	// 2 del /svc/web/a
}

func ExampleClient_Txn() {
	ctx := context.Background()
	c, err := wire.Dial(ctx, replicas(), wire.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	old, _ := c.Set(ctx, "/conf/a.tmp", fs.Missing, []byte("v2"))

	// A rename: both changes in one revision, or neither.
	rev, err := c.Txn(ctx, []fs.Op{
		{Kind: fs.OpSet, Path: "/conf/a", Rev: fs.Clobber, Body: []byte("v2")},
		{Kind: fs.OpDel, Path: "/conf/a.tmp", Rev: old},
	})
	fmt.Println(rev, err)
	entries, _ := c.GetDir(ctx, "/conf", 0)
	fmt.Println(entries)
	// Output:
	// 2 <nil>
	// [{a file}]
}
