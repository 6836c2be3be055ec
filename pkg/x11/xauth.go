package x11

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
)

// Families of Xauthority entries (X11/Xauth.h) that name a local display.
const (
	familyLocal = 256
	familyWild  = 65535
)

// CookieName is the only authorization protocol ffl speaks (what xauth and xpra write).
const CookieName = "MIT-MAGIC-COOKIE-1"

// MaxXauthority caps the Xauthority file read (the session's own has one entry).
const MaxXauthority = 64 << 10

// Entry is one record of an Xauthority file.
type Entry struct {
	Family  uint16
	Address string
	Display string
	Name    string
	Data    []byte
}

// ParseXauthority parses the Xauthority format: records of a big-endian u16 family, then four
// (u16 length, bytes) fields: address, display number, auth name, auth data.
func ParseXauthority(data []byte) ([]Entry, error) {
	var out []Entry
	field := func() ([]byte, error) {
		if len(data) < 2 {
			return nil, errors.New("truncated length")
		}
		n := int(binary.BigEndian.Uint16(data))
		if len(data) < 2+n {
			return nil, errors.New("truncated field")
		}
		f := data[2 : 2+n]
		data = data[2+n:]
		return f, nil
	}
	for len(data) > 0 {
		if len(data) < 2 {
			return nil, fmt.Errorf("xauthority: entry %d: truncated family", len(out))
		}
		e := Entry{Family: binary.BigEndian.Uint16(data)}
		data = data[2:]
		var fs [4][]byte
		for i := range fs {
			f, err := field()
			if err != nil {
				return nil, fmt.Errorf("xauthority: entry %d: %w", len(out), err)
			}
			fs[i] = f
		}
		e.Address, e.Display, e.Name, e.Data = string(fs[0]), string(fs[1]), string(fs[2]), append([]byte(nil), fs[3]...)
		out = append(out, e)
	}
	return out, nil
}

// Cookie returns the MIT-MAGIC-COOKIE-1 for local display n from the Xauthority file at path
// (the session's own, which xpra fills for its Xvfb).
func Cookie(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("xauthority: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxXauthority+1))
	if err != nil {
		return nil, fmt.Errorf("xauthority %s: %w", path, err)
	}
	if len(data) > MaxXauthority {
		return nil, fmt.Errorf("xauthority %s: larger than %d bytes", path, MaxXauthority)
	}
	cookie, err := CookieIn(data, n)
	if err != nil {
		return nil, fmt.Errorf("xauthority %s: %w", path, err)
	}
	return cookie, nil
}

// CookieIn is Cookie on the contents of an Xauthority file, for a caller that read it itself
// (root, through a verified directory fd).
func CookieIn(data []byte, n int) ([]byte, error) {
	entries, err := ParseXauthority(data)
	if err != nil {
		return nil, err
	}
	want := strconv.Itoa(n)
	for _, e := range entries {
		if (e.Family == familyLocal || e.Family == familyWild) && e.Display == want && e.Name == CookieName && len(e.Data) == 16 {
			return e.Data, nil
		}
	}
	return nil, fmt.Errorf("no %s for display :%d", CookieName, n)
}
