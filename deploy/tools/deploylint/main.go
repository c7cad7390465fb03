// Command deploylint checks Confab's deployment files where no off-the-shelf
// tool reachable here does (scripts/check-deploy.sh runs it):
//
//	deploylint monitoring [-metrics names.txt] manifest.yaml...
//	deploylint skaffold -root DIR
//	deploylint dockerfile -root DIR
//	deploylint buildstage -root DIR -service NAME -workdir DIR
//
// Each prints one summary line and exits 1 on any finding.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: deploylint monitoring|skaffold|dockerfile|buildstage [flags] [files]")
		os.Exit(2)
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "monitoring":
		os.Exit(runMonitoring(args))
	case "skaffold":
		os.Exit(runSkaffold(args))
	case "dockerfile":
		os.Exit(runDockerfiles(args))
	case "buildstage":
		os.Exit(runBuildstage(args))
	default:
		fmt.Fprintf(os.Stderr, "deploylint: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}
