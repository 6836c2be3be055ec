package main

import (
	"fmt"
	"strings"
)

// Results of one figure. "info" rows have no target (references such as /bin/true, or figures
// the brief asks for information only); "error" means the figure could not be measured, and the
// note under the table says why.
const (
	resPass  = "pass"
	resMiss  = "**MISS**"
	resInfo  = "info"
	resError = "**ERROR**"
)

// row is one line of the results table.
type row struct {
	id       string // short reference used by the notes, e.g. "L1"
	figure   string
	measured string
	target   string
	result   string
}

// report is the single table `make bench` prints, with notes below it: the environment, how each
// figure was taken, and for every miss or error the best explanation with its evidence.
type report struct {
	title  string
	header []string
	rows   []row
	notes  []string
	// failures are what the bench saw go wrong beyond a missed target (a job's processes or
	// directories left after its SIGTERM): each fails the whole run (non-zero exit).
	failures []string
}

func (r *report) add(x row) { r.rows = append(r.rows, x) }

func (r *report) note(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// failure records something that fails the whole bench run, not just a figure.
func (r *report) failure(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

// verdict is resPass when ok, else resMiss.
func verdict(ok bool) string {
	if ok {
		return resPass
	}
	return resMiss
}

// cell makes s safe inside a markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	return strings.ReplaceAll(s, "|", `\|`)
}

// markdown renders the report: title, header lines, the table, then the notes as a list.
func (r *report) markdown() string {
	var b strings.Builder
	if r.title != "" {
		fmt.Fprintf(&b, "# %s\n\n", r.title)
	}
	for _, h := range r.header {
		fmt.Fprintf(&b, "%s\n", h)
	}
	if len(r.header) > 0 {
		b.WriteString("\n")
	}
	b.WriteString("| id | figure | measured | target | result |\n")
	b.WriteString("|---|---|---|---|---|\n")
	for _, x := range r.rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", cell(x.id), cell(x.figure), cell(x.measured), cell(x.target), cell(x.result))
	}
	if len(r.failures) > 0 {
		fmt.Fprintf(&b, "\n**FAILED**: %d leftover(s) or hung launcher(s); each fails the bench:\n\n", len(r.failures))
		for _, f := range r.failures {
			fmt.Fprintf(&b, "- %s\n", strings.ReplaceAll(f, "\n", " "))
		}
	}
	if len(r.notes) > 0 {
		b.WriteString("\nNotes:\n\n")
		for _, n := range r.notes {
			fmt.Fprintf(&b, "- %s\n", strings.ReplaceAll(n, "\n", " "))
		}
	}
	return b.String()
}

// counts returns how many rows passed, missed and failed.
func (r *report) counts() (pass, miss, failed int) {
	for _, x := range r.rows {
		switch x.result {
		case resPass:
			pass++
		case resMiss:
			miss++
		case resError:
			failed++
		}
	}
	return pass, miss, failed
}
