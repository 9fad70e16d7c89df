// notecheck opens a signed note with the Go checksum database's note package
// (golang.org/x/mod/sumdb/note), code msgarchive did not write: exit 0 and
// the note's text when every verifier key given has a signature on it that
// verifies, 1 when one does not, 2 for bad arguments.
//
//	notecheck NOTE_FILE VKEY [VKEY...]
package main

import (
	"fmt"
	"os"

	"golang.org/x/mod/sumdb/note"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: notecheck NOTE_FILE VKEY [VKEY...]")
		os.Exit(2)
	}
	msg, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var verifiers []note.Verifier
	for _, vkey := range os.Args[2:] {
		v, err := note.NewVerifier(vkey)
		if err != nil {
			fmt.Fprintln(os.Stderr, "verifier key:", err)
			os.Exit(2)
		}
		verifiers = append(verifiers, v)
	}
	n, err := note.Open(msg, note.VerifierList(verifiers...))
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(1)
	}
	if len(n.Sigs) != len(verifiers) {
		fmt.Fprintf(os.Stderr, "verified %d signatures of %d keys\n", len(n.Sigs), len(verifiers))
		os.Exit(1)
	}
	fmt.Print(n.Text)
}
