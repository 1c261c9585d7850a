// Command interop checks Vouch's output with Go's reference implementation
// of signed notes and tiled logs (golang.org/x/mod/sumdb/note and tlog), and
// produces output for Vouch to check. Run by spec/tests/go_interop.rs:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go run interop.go <mode> ...
//
// Modes:
//
//	verify-log <dir> <vkey>   open <dir>/checkpoint, verify every tile and
//	                          bundle against it, print Go-made proofs
//	sign <skey> <text file>   print a signed note
//	generate <name>           print a new skey and vkey
package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type dirTiles struct{ dir string }

func (d dirTiles) Height() int { return 8 }

func (d dirTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		// Go's paths carry the tile height ("tile/8/...") and call entry
		// bundles "data"; C2SP's paths have no height and say "entries".
		p := strings.Replace(t.Path(), "tile/8/data/", "tile/entries/", 1)
		p = strings.Replace(p, "tile/8/", "tile/", 1)
		b, err := os.ReadFile(filepath.Join(d.dir, p))
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

func (d dirTiles) SaveTiles([]tlog.Tile, [][]byte) {}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func b64(hs []tlog.Hash) string {
	var parts []string
	for _, h := range hs {
		parts = append(parts, base64.StdEncoding.EncodeToString(h[:]))
	}
	return strings.Join(parts, " ")
}

func verifyLog(dir, vkey string) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		fail("vkey: %v", err)
	}
	msg, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if err != nil {
		fail("%v", err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		fail("note.Open: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail("size: %v", err)
	}
	rootBytes, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(rootBytes) != 32 {
		fail("root: %v", err)
	}
	var tree tlog.Tree
	tree.N = size
	copy(tree.Hash[:], rootBytes)
	// TileHashReader authenticates every tile it reads against the tree hash.
	hr := tlog.TileHashReader(tree, dirTiles{dir})
	th, err := tlog.TreeHash(size, hr)
	if err != nil || th != tree.Hash {
		fail("tree hash: %v %v", th, err)
	}
	// Every entry bundle's entries hash to the level-0 hashes.
	for start := int64(0); start < size; start += 256 {
		w := size - start
		if w > 256 {
			w = 256
		}
		t := tlog.Tile{H: 8, L: -1, N: start / 256, W: int(w)}
		data, err := dirTiles{dir}.ReadTiles([]tlog.Tile{t})
		if err != nil {
			fail("bundle %v: %v", t, err)
		}
		b := data[0]
		for i := int64(0); i < w; i++ {
			if len(b) < 2 {
				fail("bundle %v truncated", t)
			}
			l := int(b[0])<<8 | int(b[1])
			rec := b[2 : 2+l]
			b = b[2+l:]
			hs, err := hr.ReadHashes([]int64{tlog.StoredHashIndex(0, start+i)})
			if err != nil || hs[0] != tlog.RecordHash(rec) {
				fail("entry %d does not match its tile: %v", start+i, err)
			}
		}
		if len(b) != 0 {
			fail("bundle %v has trailing bytes", t)
		}
	}
	fmt.Printf("ok %d\n", size)
	for _, i := range []int64{0, 1, size / 3, size / 2, size - 2, size - 1} {
		p, err := tlog.ProveRecord(size, i, hr)
		if err != nil {
			fail("ProveRecord %d: %v", i, err)
		}
		fmt.Printf("incl %d %d %s\n", i, size, b64(p))
	}
	for _, old := range []int64{1, 2, 255, 256, 257, size / 2, size - 1} {
		p, err := tlog.ProveTree(size, old, hr)
		if err != nil {
			fail("ProveTree %d: %v", old, err)
		}
		oh, err := tlog.TreeHash(old, hr)
		if err != nil {
			fail("TreeHash %d: %v", old, err)
		}
		fmt.Printf("cons %d %d %s %s\n", old, size, base64.StdEncoding.EncodeToString(oh[:]), b64(p))
	}
}

func main() {
	if len(os.Args) < 3 {
		fail("usage: interop verify-log|sign|generate ...")
	}
	switch os.Args[1] {
	case "verify-log":
		verifyLog(os.Args[2], os.Args[3])
	case "sign":
		s, err := note.NewSigner(os.Args[2])
		if err != nil {
			fail("skey: %v", err)
		}
		text, err := os.ReadFile(os.Args[3])
		if err != nil {
			fail("%v", err)
		}
		msg, err := note.Sign(&note.Note{Text: string(text)}, s)
		if err != nil {
			fail("sign: %v", err)
		}
		os.Stdout.Write(msg)
	case "generate":
		skey, vkey, err := note.GenerateKey(rand.Reader, os.Args[2])
		if err != nil {
			fail("%v", err)
		}
		fmt.Println(skey)
		fmt.Println(vkey)
	case "verify-note":
		v, err := note.NewVerifier(os.Args[2])
		if err != nil {
			fail("vkey: %v", err)
		}
		msg, err := os.ReadFile(os.Args[3])
		if err != nil {
			fail("%v", err)
		}
		if _, err := note.Open(bytes.TrimRight(msg, ""), note.VerifierList(v)); err != nil {
			fail("note.Open: %v", err)
		}
		fmt.Println("ok")
	default:
		fail("unknown mode %q", os.Args[1])
	}
}
