// Package xpra talks to a running xpra server (3.1 to 6.x) over its unix socket, the way ffl's
// supervisor needs to: is its HTML5 page served yet (Ready), and a control command
// (show-all-windows) so that Firefox's window is mapped and paints before any client connects.
//
// Why not `xpra info` / `xpra control` subprocesses: each one is a Python start (about 0.3 s
// wall and 0.25 s CPU here, measured) on the critical path of every session start; the two
// requests ffl makes are a dozen lines of xpra's wire format.
package xpra

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// ProtocolVersion is the version ffl announces in its hello. xpra 3.1 accepts any client
// version from 0.14.10 on (version_compat_check); ffl targets Debian 12's 3.1.3.
const ProtocolVersion = "3.1"

// maxPacket bounds a reply packet ffl reads (a command response is a few hundred bytes).
const maxPacket = 1 << 20

// HTTPReady reports whether the xpra server at socket answers GET / with 200: its HTML5 client
// is being served. A refused or reset connection (xpra not listening yet) is false, not an
// error; only a malformed answer is an error.
func HTTPReady(ctx context.Context, socket string) (bool, error) {
	c, err := dial(ctx, socket)
	if err != nil {
		return false, nil
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"); err != nil {
		return false, nil
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return false, nil
		}
		return false, fmt.Errorf("xpra %s: HTTP answer: %w", socket, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK, nil
}

func dial(ctx context.Context, socket string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	} else {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	}
	return c, nil
}

// Control runs one of the server's control commands (as `xpra control SOCKET CMD ARGS...`
// does), asking in enc (Version.Encoding: the server of xpra 6 drops a bencoded hello without a
// word), and returns its text answer. The reply is read in whatever encoding its header
// announces. A non-zero answer code is an error naming it.
func Control(ctx context.Context, socket string, enc Encoding, command ...string) (string, error) {
	if len(command) == 0 {
		return "", errors.New("xpra control: no command")
	}
	c, err := dial(ctx, socket)
	if err != nil {
		return "", fmt.Errorf("xpra control %s: %w", command[0], err)
	}
	defer c.Close()
	pkt, err := CommandHelloIn(enc, command...)
	if err != nil {
		return "", fmt.Errorf("xpra control %s: %w", command[0], err)
	}
	if _, err := c.Write(pkt); err != nil {
		return "", fmt.Errorf("xpra control %s: %w", command[0], err)
	}
	r := bufio.NewReader(c)
	for {
		pkt, err := readPacket(r)
		if err != nil {
			return "", fmt.Errorf("xpra control %s: %w", command[0], err)
		}
		name, args, ok := packetName(pkt)
		if !ok {
			continue
		}
		switch name {
		case "hello":
			if len(args) == 0 {
				return "", fmt.Errorf("xpra control %s: empty hello", command[0])
			}
			caps, _ := args[0].(map[string]any)
			cr, ok := caps["command_response"].([]any)
			if !ok || len(cr) != 2 {
				return "", fmt.Errorf("xpra control %s: the server sent no command response", command[0])
			}
			code, _ := cr[0].(int64)
			text := asString(cr[1])
			if code != 0 {
				return text, &CommandError{Command: command[0], Code: code, Text: text}
			}
			return text, nil
		case "disconnect":
			reason := ""
			if len(args) > 0 {
				reason = asString(args[0])
			}
			return "", fmt.Errorf("xpra control %s: disconnected: %s", command[0], reason)
		case "challenge":
			return "", fmt.Errorf("xpra control %s: the socket asks for authentication", command[0])
		}
	}
}

// CodeInvalid is the answer code of a command the server does not have (xpra's
// ControlCode.INVALID, 6 in 3.1 to 6.x).
const CodeInvalid = 6

// CommandError is a control command's non-zero answer.
type CommandError struct {
	Command string
	Code    int64
	Text    string
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("xpra control %s: code %d: %s", e.Command, e.Code, e.Text)
}

// CommandHello is the bencoded packet (xpra 3.x) that opens a control connection and asks for
// one control command (what Control sends): the bytes xpra reads on its socket, or in one binary
// WebSocket message. Tests use it as an attacker would, to ask a session for "start".
func CommandHello(command ...string) ([]byte, error) {
	return CommandHelloIn(Bencode, command...)
}

// CommandHelloIn is CommandHello in the packet encoding enc. The hello names only that
// encoding, so the server answers in it (xpra picks the first encoding of its own preference
// order that the client's hello names).
func CommandHelloIn(enc Encoding, command ...string) ([]byte, error) {
	req := make([]any, len(command))
	for i, s := range command {
		req[i] = s
	}
	var b bytes.Buffer
	err := writePacket(&b, enc, []any{"hello", map[string]any{
		"version":           ProtocolVersion,
		"request":           "command",
		"command_request":   req,
		"compression_level": 0,
		"rencode":           false,
		"bencode":           enc == Bencode,
		"rencodeplus":       enc == RencodePlus,
		"encoders":          []any{enc.String()},
	}})
	return b.Bytes(), err
}

func packetName(pkt any) (string, []any, bool) {
	l, ok := pkt.([]any)
	if !ok || len(l) == 0 {
		return "", nil, false
	}
	return asString(l[0]), l[1:], true
}

func asString(v any) string {
	switch s := v.(type) {
	case string:
		return s
	case []byte:
		return string(s)
	}
	return fmt.Sprint(v)
}

// writePacket sends one uncompressed packet in enc: an 8-byte header ('P', the encoding's
// flag, compression level 0, chunk index 0, big-endian payload size), then the payload.
func writePacket(w io.Writer, enc Encoding, pkt any) error {
	var payload []byte
	var err error
	hdr := make([]byte, 8)
	hdr[0] = 'P'
	if enc == RencodePlus {
		payload, err = EncodeRencodePlus(pkt)
		hdr[1] = flagRencodePlus
	} else {
		payload, err = Encode(pkt)
		hdr[1] = flagBencode
	}
	if err != nil {
		return err
	}
	binary.BigEndian.PutUint32(hdr[4:], uint32(len(payload)))
	_, err = w.Write(append(hdr, payload...))
	return err
}

// readPacket reads packets until a main one (chunk index 0) and decodes it. Raw chunks (index
// > 0, used for large binary items) are skipped: no reply ffl reads carries them.
func readPacket(r *bufio.Reader) (any, error) {
	for {
		hdr := make([]byte, 8)
		if _, err := io.ReadFull(r, hdr); err != nil {
			return nil, err
		}
		if hdr[0] != 'P' {
			return nil, fmt.Errorf("not an xpra packet (first byte %q)", hdr[0])
		}
		flags, level, index := hdr[1], hdr[2], hdr[3]
		size := binary.BigEndian.Uint32(hdr[4:])
		if size > maxPacket {
			return nil, fmt.Errorf("packet of %d bytes (max %d)", size, maxPacket)
		}
		payload := make([]byte, size)
		if _, err := io.ReadFull(r, payload); err != nil {
			return nil, err
		}
		if index > 0 {
			continue
		}
		if level != 0 {
			return nil, fmt.Errorf("compressed packet (level %d) although compression 0 was asked for", level)
		}
		var v any
		var rest []byte
		var err error
		switch flags {
		case flagBencode:
			v, rest, err = Decode(payload)
		case flagRencodePlus:
			v, rest, err = DecodeRencodePlus(payload)
		default:
			return nil, fmt.Errorf("packet flags %#x: only bencode (0) and rencodeplus (0x10) are understood", flags)
		}
		if err != nil {
			return nil, err
		}
		if len(rest) != 0 {
			return nil, fmt.Errorf("%d bytes after the packet", len(rest))
		}
		return v, nil
	}
}
