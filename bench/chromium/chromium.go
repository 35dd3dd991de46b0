// Package chromium starts a headless Chromium (Debian's chromium package)
// under chromedp for the tests that drive the web pages in a real browser.
package chromium

import (
	"context"
	"fmt"
	"os"

	"github.com/chromedp/chromedp"
)

// Path is where Debian installs the browser (make deps installs it).
const Path = "/usr/bin/chromium"

// Start launches a browser with a fresh profile in profileDir and no proxy
// (one from the environment must not stand between it and loopback
// addresses). The returned context drives it until ctx ends or stop is
// called; logf receives chromedp's log.
func Start(ctx context.Context, profileDir string, logf func(string, ...any)) (browser context.Context, stop func(), err error) {
	if _, err := os.Stat(Path); err != nil {
		return nil, nil, fmt.Errorf("%s is absent (Debian package chromium): %w", Path, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(Path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.UserDataDir(profileDir),
		chromedp.WindowSize(1200, 860),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(logf))
	return bctx, func() { cancelBrowser(); cancelAlloc() }, nil
}
