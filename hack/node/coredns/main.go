// Command coredns is CoreDNS built with only the plugins a one-node test
// cluster's DNS needs: the documented way to compile CoreDNS with selected
// plugins (compare core/plugin/zplugin.go and core/dnsserver/zdirectives.go
// upstream, which import and order all of them). Leaving out the cloud
// plugins (route53, azure, clouddns) and the rest keeps their SDKs out of the
// module graph and the binary small.
//
// It reads the stock kubeadm Corefile (errors, health, ready, kubernetes,
// prometheus, forward, cache, loop, reload, loadbalance) plus log and hosts;
// whoami and log make up CoreDNS's default config when there is no Corefile;
// bind keeps the test node's DNS on the node's own address.
// Built by hack/node/build.sh; the CoreDNS version is the one go.mod requires.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	// The plugins, each registering its directive in init().
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics" // the "prometheus" directive
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/whoami"
)

// directives is upstream's zdirectives.go order restricted to the plugins
// above: a plugin sees the effects of every plugin after it in this list.
var directives = []string{
	"reload",
	"bind",
	"ready",
	"health",
	"prometheus",
	"errors",
	"log",
	"loadbalance",
	"cache",
	"hosts",
	"kubernetes",
	"loop",
	"forward",
	"whoami",
}

func init() {
	dnsserver.Directives = directives
}

func main() {
	coremain.Run()
}
