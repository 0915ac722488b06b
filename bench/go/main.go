// Command gobench compares a cached token read of the pgentra Go wrapper (Connector.Token,
// libpgentra through cgo) against azidentity's ManagedIdentityCredential.GetToken (cached in
// MSAL's token cache), both against the loopback emulator's App Service managed identity
// endpoint with the same user-assigned identity. Run it under the test harness; see run.sh:
//
//	cd /work/main && bench/go/run.sh
//
// It prints a Markdown table: ns/op (median of -rounds testing.Benchmark runs, the two
// benchmarks interleaved so that machine noise hits both alike), allocations per op, and the
// ratio.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	pgentra "github.com/pgentra/pgentra/go"
)

const (
	scope = "https://ossrdbms-aad.database.windows.net/.default"
	uami  = "11111111-1111-1111-1111-111111111111"
)

func must(err error, what string) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "gobench: %s: %v\n", what, err)
		os.Exit(1)
	}
}

type sample struct {
	ns     []float64
	allocs int64
	bytes  int64
}

func (s *sample) add(r testing.BenchmarkResult) {
	s.ns = append(s.ns, float64(r.T.Nanoseconds())/float64(r.N))
	s.allocs = r.AllocsPerOp()
	s.bytes = r.AllocedBytesPerOp()
}

func (s *sample) median() float64 {
	v := append([]float64(nil), s.ns...)
	sort.Float64s(v)
	return v[len(v)/2]
}

func main() {
	rounds := flag.Int("rounds", 5, "testing.Benchmark runs per benchmark (median reported)")
	parallel := flag.Bool("parallel", true, "also measure with b.RunParallel (GOMAXPROCS goroutines)")
	breakdown := flag.Bool("breakdown", true, "also time the libpgentra calls made directly through cgo")
	flag.Parse()

	for _, v := range []string{"PGENTRA_PG_HOST", "PGENTRA_PG_PORT", "IDENTITY_ENDPOINT", "IDENTITY_HEADER"} {
		if os.Getenv(v) == "" {
			fmt.Fprintf(os.Stderr, "gobench: %s is not set: run under tests/harness/with-harness.sh (see bench/go/run.sh)\n", v)
			os.Exit(2)
		}
	}
	cs := fmt.Sprintf("host=%s port=%s dbname=postgres sslmode=require", os.Getenv("PGENTRA_PG_HOST"), os.Getenv("PGENTRA_PG_PORT"))

	ctx := context.Background()
	pc, err := pgentra.New(pgentra.Options{ConnectionString: cs, ClientID: uami, Credential: pgentra.CredentialManagedIdentity})
	must(err, "pgentra.New")
	defer pc.Close()
	mi, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ID: azidentity.ClientID(uami)})
	must(err, "azidentity.NewManagedIdentityCredential")
	tro := policy.TokenRequestOptions{Scopes: []string{scope}}

	// Warm both caches (one identity request each) and check that both got the same token.
	tp, err := pc.Token(ctx)
	must(err, "pgentra Token")
	ta, err := mi.GetToken(ctx, tro)
	must(err, "azidentity GetToken")
	same := "same token"
	if tp != ta.Token {
		same = "different tokens (both valid)"
	}

	pgTok := func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := pc.Token(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	azTok := func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := mi.GetToken(ctx, tro); err != nil {
				b.Fatal(err)
			}
		}
	}
	pgPar := func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := pc.Token(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	azPar := func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := mi.GetToken(ctx, tro); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}

	var nat *native
	if *breakdown {
		nat, err = newNative(cs, uami)
		must(err, "native connector")
		defer nat.close()
	}

	var sp, sa, spp, sap, sfloor, sc, sg sample
	for r := 0; r < *rounds; r++ {
		if *breakdown {
			sfloor.add(testing.Benchmark(cgoFloor))
			sc.add(testing.Benchmark(nat.tokenC))
			sg.add(testing.Benchmark(nat.tokenGo))
		}
		sp.add(testing.Benchmark(pgTok))
		sa.add(testing.Benchmark(azTok))
		if *parallel {
			spp.add(testing.Benchmark(pgPar))
			sap.add(testing.Benchmark(azPar))
		}
	}

	fmt.Printf("Go %s, %s/%s, GOMAXPROCS=%d, libpgentra %s, azidentity %s; %d rounds, median; %s\n\n",
		strings.TrimPrefix(runtime.Version(), "go"), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0),
		pgentra.Version(), azidentityVersion(), *rounds, same)
	fmt.Println("| measure | pgentra Go (`Connector.Token`) | azidentity (`ManagedIdentityCredential.GetToken`) | ratio |")
	fmt.Println("|---|---|---|---|")
	row := func(name string, p, a *sample) {
		pm, am := p.median(), a.median()
		fmt.Printf("| %s | %s ns/op, %d allocs (%d B)/op | %s ns/op, %d allocs (%d B)/op | %.0fx |\n",
			name, fmtNs(pm), p.allocs, p.bytes, fmtNs(am), a.allocs, a.bytes, am/pm)
	}
	row("cached token read, one goroutine", &sp, &sa)
	if *parallel {
		row(fmt.Sprintf("cached token read, RunParallel (%d goroutines)", runtime.GOMAXPROCS(0)), &spp, &sap)
	}
	if *breakdown {
		fmt.Println()
		fmt.Println("Breakdown of the pgentra Go call (direct cgo calls from this program, same rounds):")
		fmt.Println()
		fmt.Println("| step | ns/op | allocs/op |")
		fmt.Println("|---|---|---|")
		one := func(name string, s *sample) {
			fmt.Printf("| %s | %s | %d (%d B) |\n", name, fmtNs(s.median()), s.allocs, s.bytes)
		}
		one("cgo call floor (`pgentra_version`)", &sfloor)
		one("`pgentra_token` + `pgentra_string_free` (one cgo call, C copy + wipe)", &sc)
		one("the same + `C.GoString` (Go copy), as two cgo calls", &sg)
		one("`Connector.Token` (cached: pgentra_fresh_serial + the wrapper's held copy)", &sp)
	}
	fmt.Println()
	fmt.Println("Command: `bench/go/run.sh` (builds bench/go with GOPROXY=off, runs it under `tests/harness/with-harness.sh`)")
}

func fmtNs(v float64) string {
	if v >= 100 {
		s := fmt.Sprintf("%.0f", v)
		// thousands separators
		var out []byte
		for i, c := range []byte(s) {
			if i > 0 && (len(s)-i)%3 == 0 {
				out = append(out, ',')
			}
			out = append(out, c)
		}
		return string(out)
	}
	return fmt.Sprintf("%.1f", v)
}

// azidentityVersion reads the azidentity module's version from the build info.
func azidentityVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == "github.com/Azure/azure-sdk-for-go/sdk/azidentity" {
				return m.Version
			}
		}
	}
	return "?"
}
