package htest

import (
	"reflect"
	"testing"
)

func TestParseFuseConns(t *testing.T) {
	const mnt = "/tmp/x/hostile-1/mnt"
	info := "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n" +
		"301 22 0:63 / /tmp/x/hostile-1/mnt rw,nosuid,nodev,relatime - fuse hostile rw,user_id=0,group_id=0\n" +
		"302 22 0:64 / /tmp/x/hostile-2/mnt rw,nosuid,nodev,relatime - fuse hostile rw,user_id=0,group_id=0\n" +
		"303 22 0:65 / /tmp/x/hostile-1/mnt rw - tmpfs tmpfs rw\n" +
		"304 22 1:2 / /tmp/x/hostile-1/mnt rw - fuse.sshfs host: rw\n"
	for _, tc := range []struct {
		name, info, mnt string
		want            []string
	}{
		{"own fuse mounts only, named as fusectl names them", info, mnt, []string{"63", "1048578"}},
		{"another attack's mount point", info, "/tmp/x/hostile-3/mnt", nil},
		{"empty", "", mnt, nil},
		{"truncated lines", "301 22 0:63 /\n - fuse\n", mnt, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseFuseConns(tc.info, tc.mnt); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("parseFuseConns = %v, want %v", got, tc.want)
			}
		})
	}
}
