package replica

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// identityFile names the file in the data directory that holds the
// replica's consensus id and cluster (docs/storage.md §7).
const identityFile = "identity"

// identity is who a data directory belongs to. It never changes once
// written: a replica restarted on its data directory is the same member.
type identity struct {
	ID      uint64
	Cluster string
}

func newID() uint64 {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic(err)
		}
		if id := binary.LittleEndian.Uint64(b[:]) >> 1; id != 0 { // < 2^63: fits an int64 too
			return id
		}
	}
}

// readIdentity reads DIR/identity; ok is false when it does not exist.
func readIdentity(dir string) (identity, bool, error) {
	p := filepath.Join(dir, identityFile)
	f, err := os.Open(p)
	if os.IsNotExist(err) {
		return identity{}, false, nil
	}
	if err != nil {
		return identity{}, false, err
	}
	defer f.Close()
	var id identity
	sc := bufio.NewScanner(f)
	first := true
	for sc.Scan() {
		line := sc.Text()
		if first {
			if line != "doozerfs identity 1" {
				return identity{}, false, fmt.Errorf("%s: not a doozerfs identity file", p)
			}
			first = false
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return identity{}, false, fmt.Errorf("%s: malformed line %q", p, line)
		}
		switch k {
		case "id":
			id.ID, err = strconv.ParseUint(v, 10, 64)
			if err != nil || id.ID == 0 {
				return identity{}, false, fmt.Errorf("%s: bad id %q", p, v)
			}
		case "cluster":
			id.Cluster = v
		}
	}
	if err := sc.Err(); err != nil {
		return identity{}, false, fmt.Errorf("%s: %w", p, err)
	}
	if id.ID == 0 {
		return identity{}, false, fmt.Errorf("%s: no id", p)
	}
	return id, true, nil
}

// writeIdentity writes DIR/identity durably: a temporary file, fsync,
// rename, fsync of the directory.
func writeIdentity(dir string, id identity) error {
	p := filepath.Join(dir, identityFile)
	tmp := p + ".tmp"
	body := fmt.Sprintf("doozerfs identity 1\nid=%d\ncluster=%s\n", id.ID, id.Cluster)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(body); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
