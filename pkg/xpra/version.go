package xpra

import (
	"fmt"
	"regexp"
	"strconv"
)

// Version is an installed xpra's release, from `xpra --version` ("xpra v3.1.3", "xpra v6.5.5",
// "xpra v6.3-r0", ...). ffl builds xpra's command line and chooses its packet encoding from it.
type Version struct {
	Major, Minor, Micro int
}

var versionRE = regexp.MustCompile(`\bv?(\d+)\.(\d+)(?:\.(\d+))?`)

// ParseVersion reads the first "MAJOR.MINOR[.MICRO]" of an `xpra --version` line.
func ParseVersion(s string) (Version, error) {
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		return Version{}, fmt.Errorf("xpra version %q: no MAJOR.MINOR in it", s)
	}
	var v Version
	v.Major, _ = strconv.Atoi(m[1])
	v.Minor, _ = strconv.Atoi(m[2])
	if m[3] != "" {
		v.Micro, _ = strconv.Atoi(m[3])
	}
	return v, nil
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Micro) }

// AtLeast reports whether v is major.minor or later.
func (v Version) AtLeast(major, minor int) bool {
	return v.Major > major || (v.Major == major && v.Minor >= minor)
}

// Encoding is a packet encoding of xpra's wire format.
type Encoding int

const (
	// Bencode is what xpra 3.x and 4.x decode (header flags 0). xpra 6.0 removed it.
	Bencode Encoding = iota
	// RencodePlus is what xpra 5.x prefers and 6.x requires (header flag 0x10).
	RencodePlus
)

// Header flags of each encoding (the second byte of a packet header).
const (
	flagBencode     = 0x00
	flagRencodePlus = 0x10
)

func (e Encoding) String() string {
	if e == RencodePlus {
		return "rencodeplus"
	}
	return "bencode"
}

// Encoding is the packet encoding ffl speaks to this version's server: rencodeplus from 5.0
// (its packet_encoding module prefers it and 6.0 dropped bencode), bencode before (3.x has no
// rencodeplus).
func (v Version) Encoding() Encoding {
	if v.Major >= 5 {
		return RencodePlus
	}
	return Bencode
}
