package safefs

// OnlyWritableBy reports whether a directory with this owner, group and mode can be changed by
// nobody but root and uid (uid < 0: root alone): owned by root or uid, not world-writable, and
// group-writable only for group root (a group's other members could plant or replace entries).
// It is the rule for what root writes into (the metrics file's directory) and for the PATH
// entries a child of ffl finds its programs in.
func OnlyWritableBy(ownerUID, gid, mode uint32, uid int) bool {
	if ownerUID != 0 && (uid < 0 || int(ownerUID) != uid) {
		return false
	}
	if mode&0o002 != 0 {
		return false
	}
	return mode&0o020 == 0 || gid == 0
}

// OnlyRootWrites is OnlyWritableBy for root alone.
func OnlyRootWrites(ownerUID, gid, mode uint32) bool { return OnlyWritableBy(ownerUID, gid, mode, -1) }
