package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// jupyterVisit is one visit measured by tests/jupyter's TestVisitBench (its visitFigure).
type jupyterVisit struct {
	Prestart string  `json:"prestart"`
	Round    int     `json:"round"`
	Visit    int     `json:"visit"`
	Seconds  float64 `json:"seconds"`
	Load     string  `json:"load"`
	At       string  `json:"at"`
}

// jupyterFigures runs the Jupyter suite's bench mode (tests/jupyter TestVisitBench: the real
// JupyterHub, SlurmSpawner, jupyter-server-proxy and chromium, under the machine-wide Slurm suite
// lock) and reports the user's first visit to Firefox against later ones, from the click on
// JupyterLab's Firefox card to Firefox's painted page, with jupyter_prestart false, true and
// "recent" (the default; measured last, with the earlier servers' visits on record).
// It runs from the module's root (scripts/bench.sh changes there) with the go on PATH.
func (b *bench) jupyterFigures() {
	out := filepath.Join(b.o.scratch, "jupyter-visits.json")
	logPath := filepath.Join(b.o.scratch, "jupyter-visits.log")
	_ = os.Remove(out)
	rounds := b.reps(2, 1)
	b.progress("jupyter: %d round(s) of a server spawned with jupyter_prestart false, true, then \"recent\", %s",
		rounds, "waiting for /run/ffl-slurm-suite.lock if another suite holds it")
	logf, err := os.Create(logPath)
	if err != nil {
		b.rep.add(row{"J", "Jupyter visits", err.Error(), "", resError})
		return
	}
	defer logf.Close()
	cmd := exec.Command("go", "test", "-count=1", "-v", "-timeout", "30m", "-run", "^TestVisitBench$", "./tests/jupyter/")
	cmd.Env = append(os.Environ(), "FFL_JUPYTER_BENCH="+out, "FFL_JUPYTER_BENCH_ROUNDS="+strconv.Itoa(rounds))
	cmd.Stdout, cmd.Stderr = logf, logf
	t0 := time.Now()
	runErr := cmd.Run()
	took := time.Since(t0)
	var visits []jupyterVisit
	data, err := os.ReadFile(out)
	if err == nil {
		err = json.Unmarshal(data, &visits)
	}
	if runErr != nil || err != nil || len(visits) == 0 {
		why := fmt.Sprintf("go test %v, figures %v", runErr, err)
		if log, _ := os.ReadFile(logPath); strings.Contains(string(log), "--- SKIP") {
			why = "skipped: " + skipLine(string(log))
		}
		b.rep.add(row{"J", "Jupyter visits (tests/jupyter TestVisitBench)", why + "; log " + logPath, "", resError})
		return
	}
	loads := map[string]bool{}
	var loadList []string
	for _, prestart := range []string{"false", "true", "recent"} {
		var first, later samples
		for _, v := range visits {
			if v.Prestart != prestart {
				continue
			}
			d := time.Duration(v.Seconds * float64(time.Second))
			if v.Visit == 1 {
				first = append(first, d)
			} else {
				later = append(later, d)
			}
			if !loads[v.Load] {
				loads[v.Load] = true
				loadList = append(loadList, v.Load)
			}
		}
		var id, fig string
		switch prestart {
		case "false":
			id, fig = "J1", "Jupyter, jupyter_prestart = false (as the default \"recent\" for a user without a visit in 14 days): the first visit to /user/NAME/firefox/ against later ones (tab closed between), click on JupyterLab's Firefox card to Firefox painted in chromium"
		case "true":
			id, fig = "J2", "Jupyter, jupyter_prestart = true: the same, the session started with every notebook server"
		default:
			id, fig = "J3", "Jupyter, jupyter_prestart = \"recent\" (the default), for a user who opened Firefox from JupyterLab before (J1's and J2's visits): the same, the session started with the notebook server"
		}
		if len(first) == 0 || len(later) == 0 {
			b.rep.add(row{id, fig, "no visits", "", resError})
			continue
		}
		x := ratio(first.median(), later.median())
		b.rep.add(row{id, fig,
			fmt.Sprintf("first %s (%s); later %s (%s); %.2fx", first.summary(), list(first), later.summary(), list(later), x),
			"first <= 1.3x later", verdict(x <= 1.3)})
	}
	b.rep.note("J2, J3: with the session started early the log shows each job's \"session ready\" against the clicks (\"click at\"): a first visit slower than later ones although the session was ready before the click is the first visit's own path, not Firefox's start; each visit's line also has the tab's navigation timing (the page's first byte and load), which tells the wait before the page (the proxies, jupyter-server-proxy starting `ffl-launch proxy`) from the client's connection after it.")
	b.rep.note("J1-J3: tests/jupyter TestVisitBench (%d round(s) of one server per setting, %d visits each, the first one as soon as the spawn ended), %s wall including the suite's setup and any wait for the Slurm suite lock; load average at the visits: %s. Log: %s.",
		rounds, len(visits)/(3*rounds), took.Round(time.Second), strings.Join(loadList, "; "), logPath)
}

// list renders every sample, in order.
func list(s samples) string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = ms(d)
	}
	return strings.Join(parts, ", ")
}

// skipLine is the reason of a skipped test in go test -v's output.
func skipLine(log string) string {
	lines := strings.Split(log, "\n")
	for i, l := range lines {
		if strings.Contains(l, "--- SKIP") && i+1 < len(lines) {
			return strings.TrimSpace(lines[i+1])
		}
	}
	return "see the log"
}
