package doctor

import (
	"path/filepath"
	"strings"
	"testing"
)

// FuzzReadSlurmConf: any bytes as slurm.conf, with every Include naming a file that holds the
// same bytes again (so Include lines nest, repeat and cycle): the reader ends within its
// bounds, never panics, and every value it keeps is one line of text.
func FuzzReadSlurmConf(f *testing.F) {
	for _, seed := range []string{
		"Epilog=/usr/local/sbin/ffl-epilog\nKillWait=30\n",
		"Include a.conf\nInclude b.conf\nEpilog=x\n",
		"include\tslurm.conf\n",
		"ClusterName=Alpha\nInclude %c.conf\nInclude %c/%c.conf\n",
		"Include conf.d/*.conf\n",
		"Epilog=\"a b\"  Prolog=c\n",
		"A=b\\\n c\\\\\\\nd # e \\# f\n",
		"NodeName=n[1-4] CPUs=2 Dirs=/tmp\\\n",
		"Include",
		"=\n\"\n\\",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, v := range []Version{{22, 5}, {23, 11}, {}} {
			reads := 0
			read := func(path string, max int64) ([]byte, fileOwner, error) {
				reads++
				if int64(len(data)) > max {
					return data[:max], fileOwner{}, nil
				}
				return data, fileOwner{}, nil
			}
			c, err := readSlurmConf("/etc/slurm/slurm.conf", v, read)
			if err != nil {
				t.Fatal(err)
			}
			if reads > maxConfFiles || len(c.Files) != reads || c.size > maxConfTotalSize+maxConfFileSize {
				t.Fatalf("read %d files (%d listed), %d bytes", reads, len(c.Files), c.size)
			}
			for _, p := range c.Files {
				if !filepath.IsAbs(p) || strings.Count(p, "/") > 4096 {
					t.Fatalf("read %q", p)
				}
			}
			for key, all := range c.settings {
				for _, s := range all {
					if strings.ContainsAny(s.Value, "\n") || strings.ToLower(s.Key) != key || s.Line < 1 {
						t.Fatalf("setting %+v under %q", s, key)
					}
				}
			}
			_ = evalHookLines(c)
		}
	})
}

// evalHookLines runs the hook rules over a fuzzed configuration without touching files: every
// value becomes a pattern under a directory that does not exist.
func evalHookLines(c *SlurmConf) hookEval {
	c.Dir = "/nonexistent-ffl-fuzz"
	for key, all := range c.settings {
		if key == "epilog" {
			for i := range all {
				all[i].Value = filepath.Join(c.Dir, strings.TrimLeft(all[i].Value, "/"))
			}
		}
	}
	return evalHook(c, "Epilog", epilogProgram, 0)
}
