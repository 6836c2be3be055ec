// Package clidoc renders man pages and bash completion from the urfave/cli definitions of ffl's
// commands, so that what `man ffl-launch` and <TAB> offer is what the binary parses: a flag
// added, renamed or hidden in cmd/ changes the generated files, and the golden tests beside each
// command fail until `make docs` has regenerated them.
//
// The structure (synopsis, options with their defaults, subcommands, examples from ArgsUsage) is
// walked here rather than taken from cli.App.ToMarkdown, which leaves out ArgsUsage, the
// top-level action of the root hooks and the examples; the prose a page needs beyond the flags
// (exit status, files, environment) is given by each command as markdown. go-md2man turns the
// result into roff.
package clidoc

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/cpuguy83/go-md2man/v2/md2man"
	"github.com/urfave/cli/v2"
)

// Page is one man page of a command.
type Page struct {
	App *cli.App
	// Section is the man section: 1 for user commands, 8 for the root hooks.
	Section int
	// Description is the DESCRIPTION section (markdown).
	Description string
	// Sections come after COMMANDS, in order: EXIT STATUS, ENVIRONMENT, FILES, SEE ALSO, ...
	Sections []Section
}

// Section is a titled part of a page; Body is markdown.
type Section struct {
	Title, Body string
}

// Markdown renders the page as go-md2man markdown.
func (p Page) Markdown() string {
	a := p.App
	var b strings.Builder
	fmt.Fprintf(&b, "%% %s %d \"\" \"ffl\" \"ffl manual\"\n\n", a.Name, p.Section)
	fmt.Fprintf(&b, "# NAME\n\n%s - %s\n\n# SYNOPSIS\n\n", a.Name, Escape(a.Usage))
	var synopses []string
	if a.Action != nil {
		synopses = append(synopses, synopsis(a.Name, "", a.VisibleFlags(), argsLine(a.ArgsUsage)))
	}
	for _, c := range a.VisibleCommands() {
		if c.Name == "help" {
			continue
		}
		global := ""
		if len(a.VisibleFlags()) > 0 {
			global = "[*global options*] "
		}
		synopses = append(synopses, synopsis(a.Name, global+"**"+c.Name+"**", c.VisibleFlags(), argsLine(c.ArgsUsage)))
	}
	b.WriteString(strings.Join(synopses, "\n\n") + "\n")
	if p.Description != "" {
		b.WriteString("\n# DESCRIPTION\n\n" + strings.TrimSpace(p.Description) + "\n")
	}
	if fl := a.VisibleFlags(); len(fl) > 0 {
		title := "OPTIONS"
		if len(a.VisibleCommands()) > 1 {
			title = "GLOBAL OPTIONS"
		}
		b.WriteString("\n# " + title + "\n")
		writeFlags(&b, fl)
		writeExamples(&b, a.ArgsUsage)
	}
	if cmds := visible(a.Commands); len(cmds) > 0 {
		b.WriteString("\n# COMMANDS\n")
		for _, c := range cmds {
			fmt.Fprintf(&b, "\n## %s\n\n%s\n", strings.TrimSpace(c.Name+" "+Escape(argsLine(c.ArgsUsage))), sentence(c.Usage))
			if c.Description != "" {
				b.WriteString("\n" + strings.TrimSpace(c.Description) + "\n")
			}
			writeFlags(&b, c.VisibleFlags())
			writeExamples(&b, c.ArgsUsage)
		}
	}
	for _, s := range p.Sections {
		b.WriteString("\n# " + s.Title + "\n\n" + strings.TrimSpace(s.Body) + "\n")
	}
	return b.String()
}

// Roff renders the page as a man page.
func (p Page) Roff() []byte { return Roff(p.Markdown()) }

// Roff turns go-md2man markdown into roff.
func Roff(markdown string) []byte { return md2man.Render([]byte(markdown)) }

// visible is commands without the hidden ones and cli's own "help".
func visible(cmds []*cli.Command) []*cli.Command {
	var out []*cli.Command
	for _, c := range cmds {
		if !c.Hidden && c.Name != "help" {
			out = append(out, c)
		}
	}
	return out
}

func synopsis(name, cmd string, flags []cli.Flag, args string) string {
	parts := []string{"**" + name + "**"}
	if cmd != "" {
		parts = append(parts, cmd)
	}
	if len(flags) > 0 {
		parts = append(parts, "[*options*]")
	}
	if args != "" {
		parts = append(parts, Escape(args))
	}
	return strings.Join(parts, " ")
}

// argsLine is the first line of an ArgsUsage: the arguments (ffl's commands put examples after
// a blank line, for --help).
func argsLine(argsUsage string) string {
	first, _, _ := strings.Cut(argsUsage, "\n")
	return strings.TrimSpace(first)
}

// writeExamples writes what an ArgsUsage holds after its first line (ffl's commands put
// "EXAMPLES:" and notes there, for --help): lines indented by three spaces become a literal
// block, other lines paragraphs.
func writeExamples(b *strings.Builder, argsUsage string) {
	_, rest, ok := strings.Cut(argsUsage, "\n")
	if !ok || strings.TrimSpace(rest) == "" {
		return
	}
	var code, prose []string
	flush := func() {
		if len(prose) > 0 {
			b.WriteString("\n" + Escape(strings.Join(prose, " ")) + "\n")
			prose = nil
		}
		if len(code) > 0 {
			b.WriteString("\n```\n" + strings.Join(code, "\n") + "\n```\n")
			code = nil
		}
	}
	for _, l := range strings.Split(strings.Trim(rest, "\n"), "\n") {
		switch {
		case strings.TrimSpace(l) == "":
			flush()
		case strings.HasPrefix(l, "   "):
			if len(prose) > 0 {
				flush()
			}
			code = append(code, strings.TrimPrefix(l, "   "))
		default:
			if len(code) > 0 {
				flush()
			}
			if l == "EXAMPLES:" || l == "EXAMPLE:" {
				l = strings.TrimSuffix(l[:1]+strings.ToLower(l[1:]), ":") + ":"
			}
			prose = append(prose, strings.TrimSpace(l))
		}
	}
	flush()
}

func writeFlags(b *strings.Builder, flags []cli.Flag) {
	for _, f := range sortedFlags(flags) {
		fmt.Fprintf(b, "\n%s\n: %s\n", flagTerm(f), Escape(flagUsage(f)))
	}
}

// sortedFlags keeps the source's order (the one --help shows), help and version flags last.
func sortedFlags(flags []cli.Flag) []cli.Flag {
	out := append([]cli.Flag(nil), flags...)
	rank := func(f cli.Flag) int {
		switch f.Names()[0] {
		case "help", "version":
			return 1
		}
		return 0
	}
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i]) < rank(out[j]) })
	return out
}

func flagTerm(f cli.Flag) string {
	var names []string
	for _, n := range f.Names() {
		if len(n) == 1 {
			names = append(names, `**-`+n+`**`)
		} else {
			names = append(names, `**--`+n+`**`)
		}
	}
	term := strings.Join(names, ", ")
	if takesValue(f) {
		term += "=*" + placeholder(f) + "*"
	}
	return term
}

func takesValue(f cli.Flag) bool {
	d, ok := f.(cli.DocGenerationFlag)
	return ok && d.TakesValue()
}

// placeholder names what a flag's value is.
func placeholder(f cli.Flag) string {
	name := f.Names()[0]
	switch f.(type) {
	case *cli.IntFlag, *cli.Int64Flag, *cli.UintFlag:
		return "N"
	case *cli.DurationFlag:
		return "DURATION"
	}
	switch {
	case strings.Contains(name, "conf") || strings.Contains(name, "file"):
		return "FILE"
	case strings.Contains(name, "dir"):
		return "DIR"
	case name == "url":
		return "URL"
	case name == "job":
		return "JOBID"
	case name == "user" || name == "node":
		return "NAME"
	case name == "log-format":
		return "FORMAT"
	}
	return "VALUE"
}

// flagUsage is a flag's usage sentence with its default when the usage does not give one.
func flagUsage(f cli.Flag) string {
	d, ok := f.(cli.DocGenerationFlag)
	if !ok {
		return ""
	}
	u := sentence(d.GetUsage())
	def := d.GetDefaultText()
	if def == "" {
		def = d.GetValue()
	}
	if bf, ok := f.(*cli.BoolFlag); ok {
		def = ""
		if bf.Value {
			def = "true"
		}
	}
	switch def {
	case "", "0", "0s", "false", `""`:
	default:
		if !strings.Contains(u, "default") {
			u = strings.TrimSuffix(u, ".") + " (default " + def + ")."
		}
	}
	if r, ok := f.(cli.RequiredFlag); ok && r.IsRequired() {
		u = strings.TrimSuffix(u, ".") + " (required)."
	}
	return u
}

// sentence ends s with a period (no capital: usages start with names like "slurm.conf").
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

// Escape keeps markdown from reading text as markup ("*", "_", "<", "[", backquotes).
func Escape(s string) string {
	return strings.NewReplacer(`\`, `\\`, "*", `\*`, "_", `\_`, "<", `\<`, "[", `\[`, "]", `\]`, "`", "\\`").Replace(s)
}

// EnvUpdate is the variable that makes CheckFile rewrite a file instead of comparing (make docs).
const EnvUpdate = "FFL_UPDATE_DOCS"

// CheckFile compares the committed generated file at path with want and says how to fix a
// difference; with FFL_UPDATE_DOCS=1 it writes want there first (make docs).
func CheckFile(path string, want []byte) error {
	if os.Getenv(EnvUpdate) == "1" {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			return err
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w (run 'make docs')", err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%s is not what the command-line definition generates: run 'make docs' and commit the result", path)
	}
	return nil
}
