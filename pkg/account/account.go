// Package account resolves a job owner through NSS with a deadline: who the privilege-dropped
// helper runs as, and where the home is. Build with cgo (CGO_ENABLED=1) so os/user asks NSS and
// LDAP/SSSD users resolve; the pure-Go fallback only reads /etc/passwd and /etc/group.
package account

import (
	"context"
	"errors"
	"fmt"
	"os/user"
	"strconv"

	"github.com/ffl-hpc/ffl/pkg/reexec"
)

// Account is a job owner as NSS knows them.
type Account struct {
	Name   string
	UID    int
	GID    int
	Groups []int
	Home   string
}

// ErrNoAccount means NSS does not know the uid (a deleted user, a broken directory service).
var ErrNoAccount = errors.New("no such user")

// maxGroups bounds the supplementary groups passed to the helper (NGROUPS_MAX is 65536; sites
// with users in thousands of groups exist, the kernel takes them all).
const maxGroups = 65536

// Lookup resolves uid through NSS. A lookup that hangs (an unreachable LDAP server) is
// abandoned when ctx is done: the root Epilog must finish in bounded time.
func Lookup(ctx context.Context, uid int) (Account, error) {
	type result struct {
		a   Account
		err error
	}
	ch := make(chan result, 1)
	go func() {
		a, err := lookup(uid)
		ch <- result{a, err}
	}()
	select {
	case r := <-ch:
		return r.a, r.err
	case <-ctx.Done():
		return Account{}, fmt.Errorf("look up uid %d: %w", uid, context.Cause(ctx))
	}
}

func lookup(uid int) (Account, error) {
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		var unknown user.UnknownUserIdError
		if errors.As(err, &unknown) {
			return Account{}, fmt.Errorf("uid %d: %w", uid, ErrNoAccount)
		}
		return Account{}, fmt.Errorf("look up uid %d: %w", uid, err)
	}
	a := Account{Name: u.Username, UID: uid, Home: u.HomeDir}
	if a.GID, err = strconv.Atoi(u.Gid); err != nil || a.GID < 0 {
		return Account{}, fmt.Errorf("uid %d: primary gid %q is not a number", uid, u.Gid)
	}
	if gids, err := u.GroupIds(); err == nil {
		for _, g := range gids {
			if n, err := strconv.Atoi(g); err == nil && n >= 0 && len(a.Groups) < maxGroups {
				a.Groups = append(a.Groups, n)
			}
		}
	}
	return a, nil
}

// Credential is who a child re-executed for this account runs as.
func (a Account) Credential() *reexec.Credential {
	return &reexec.Credential{UID: a.UID, GID: a.GID, Groups: a.Groups}
}
