package wal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Record is one WAL record. Type is chosen by the caller from 1 through
// MaxUserType; Data is opaque and at most Options.MaxRecord bytes.
type Record struct {
	Type uint8
	Data []byte
}

// Record types. 0 never appears on disk (an all-zero header marks the end of
// the records in a segment) and the types above MaxUserType are the WAL's own.
const (
	// MaxUserType is the largest Type a caller may give a Record.
	MaxUserType uint8 = 0xEF

	// typeCommit ends a batch: Sync writes one after the batch's records,
	// just before its fdatasync. It carries no data.
	typeCommit uint8 = 0xFF
)

// Frame layout; see docs/storage.md. All integers are little-endian.
//
//	0  4  CRC-32C (Castagnoli) of bytes 4 to the end of the frame
//	4  4  length n of the data
//	8  8  index: the record's index, or for a commit frame the index of the
//	      last record before it
//	16 4  batch generation
//	20 1  type
//	21 3  zero
//	24 n  data, then zeros up to a multiple of 8
const (
	frameHeaderSize = 24
	frameAlign      = 8
	commitFrameSize = frameHeaderSize
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frameHeader is a decoded frame header.
type frameHeader struct {
	crc   uint32
	size  uint32 // length of the data, without padding
	index uint64
	gen   uint32
	typ   uint8
}

// padded returns n rounded up to a multiple of frameAlign.
func padded(n int64) int64 { return (n + frameAlign - 1) &^ (frameAlign - 1) }

// frameLen returns the size on disk of a frame holding n bytes of data.
func frameLen(n int64) int64 { return frameHeaderSize + padded(n) }

// appendFrame encodes one frame at the end of dst.
func appendFrame(dst []byte, typ uint8, index uint64, gen uint32, data []byte) []byte {
	start := len(dst)
	var h [frameHeaderSize]byte
	binary.LittleEndian.PutUint32(h[4:], uint32(len(data)))
	binary.LittleEndian.PutUint64(h[8:], index)
	binary.LittleEndian.PutUint32(h[16:], gen)
	h[20] = typ
	dst = append(dst, h[:]...)
	dst = append(dst, data...)
	var zeros [frameAlign]byte
	dst = append(dst, zeros[:padded(int64(len(data)))-int64(len(data))]...)
	crc := crc32.Checksum(dst[start+4:], castagnoli)
	binary.LittleEndian.PutUint32(dst[start:], crc)
	return dst
}

// parseHeader decodes a frame header. It returns a reason when the bytes
// cannot be a header: a zero or unknown type, or non-zero reserved bytes.
// It does not check the length against any limit.
func parseHeader(b []byte) (frameHeader, string) {
	h := frameHeader{
		crc:   binary.LittleEndian.Uint32(b[0:]),
		size:  binary.LittleEndian.Uint32(b[4:]),
		index: binary.LittleEndian.Uint64(b[8:]),
		gen:   binary.LittleEndian.Uint32(b[16:]),
		typ:   b[20],
	}
	switch {
	case b[21] != 0 || b[22] != 0 || b[23] != 0:
		return h, "reserved header bytes are not zero"
	case h.typ == 0:
		return h, "record type 0"
	case h.typ > MaxUserType && h.typ != typeCommit:
		return h, fmt.Sprintf("unknown internal record type %#x", h.typ)
	case h.typ == typeCommit && h.size != 0:
		return h, fmt.Sprintf("commit record with %d bytes of data", h.size)
	}
	return h, ""
}

// frameCRC computes the checksum of a frame from its header bytes and its
// padded body.
func frameCRC(header, body []byte) uint32 {
	return crc32.Update(crc32.Checksum(header[4:frameHeaderSize], castagnoli), castagnoli, body)
}

// allZero reports whether b holds only zero bytes.
func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// firstNonZero returns the index of the first non-zero byte of b, or -1.
func firstNonZero(b []byte) int {
	// Whole zero pages are skipped with bytes.Equal (vectorised, and not
	// instrumented byte by byte under -race): a start scans the unused
	// tail of a preallocated 64 MiB segment.
	off := 0
	for len(b)-off >= len(zeroPage) && bytes.Equal(b[off:off+len(zeroPage)], zeroPage[:]) {
		off += len(zeroPage)
	}
	for i := off; i < len(b); i++ {
		if b[i] != 0 {
			return i
		}
	}
	return -1
}

var zeroPage [4096]byte
