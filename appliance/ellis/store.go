package ellis

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"net/http"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"stillwater/kv"
)

// account is an Ellis account (table ellis_account, keyed by lower-case email).
type account struct {
	Email          string    `json:"email"` // as given at sign-up
	FullName       string    `json:"full_name"`
	PasswordHash   []byte    `json:"password_hash"`
	Epoch          uint64    `json:"epoch"` // sessions carry it; raised on password change
	Created        time.Time `json:"created"`
	RecoveryHash   []byte    `json:"recovery_hash,omitempty"` // SHA-256 of the pending recovery token
	RecoveryExpiry time.Time `json:"recovery_expiry,omitzero"`
	Lines          []string  `json:"lines,omitempty"` // SIP URIs, in allocation order
}

// number is one number of the pool (table ellis_number, keyed by SIP URI).
type number struct {
	URI       string    `json:"uri"`
	PSTN      bool      `json:"pstn"`
	Realm     string    `json:"realm"`
	Owner     string    `json:"owner,omitempty"` // account key; empty while free
	PrivateID string    `json:"private_id,omitempty"`
	Allocated time.Time `json:"allocated,omitzero"`
}

const (
	minPasswordLen   = 6  // Ellis's rule
	maxPasswordLen   = 72 // bcrypt uses no more
	maxNameLen       = 256
	recoveryLifetime = time.Hour
	maxCASRetries    = 16
)

var (
	errPoolEmpty  = errf(http.StatusServiceUnavailable, "No available numbers")
	errNoAccount  = errf(http.StatusNotFound, "User not found")
	errNoNumber   = errf(http.StatusNotFound, "Number not found")
	errBadLogin   = errf(http.StatusForbidden, "Incorrect username or password")
	errBadToken   = errf(http.StatusBadRequest, "Invalid token or email address")
	errContention = errf(http.StatusServiceUnavailable, "too many concurrent changes, try again")
)

// accountKey is the key of an account: e-mail addresses are compared
// without regard to case.
func accountKey(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

func validEmail(email string) error {
	if len(email) > 254 {
		return errf(http.StatusBadRequest, "email: longer than 254 characters")
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || a.Name != "" {
		return errf(http.StatusBadRequest, "email: %q is not an e-mail address", email)
	}
	return nil
}

func validPassword(what, pw string) error {
	if len(pw) < minPasswordLen {
		return errf(http.StatusBadRequest, "%s: at least %d characters are needed", what, minPasswordLen)
	}
	if len(pw) > maxPasswordLen {
		return errf(http.StatusBadRequest, "%s: at most %d bytes are allowed", what, maxPasswordLen)
	}
	return nil
}

func (s *Server) signup(ctx context.Context, email, password, fullName string) (account, error) {
	email = strings.TrimSpace(email)
	if err := validEmail(email); err != nil {
		return account{}, err
	}
	if err := validPassword("password", password); err != nil {
		return account{}, err
	}
	if len(fullName) > maxNameLen {
		return account{}, errf(http.StatusBadRequest, "full_name: longer than %d characters", maxNameLen)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.opts.PasswordCost)
	if err != nil {
		return account{}, fmt.Errorf("hash password: %w", err)
	}
	a := account{Email: email, FullName: fullName, PasswordHash: hash, Epoch: 1, Created: s.clock.Now().UTC()}
	if _, err := s.accounts.CAS(ctx, accountKey(email), a, 0, 0); err != nil {
		if errors.Is(err, kv.ErrConflict) {
			return account{}, errf(http.StatusConflict, "Email already exists")
		}
		return account{}, fmt.Errorf("create account %s: %w", email, err)
	}
	s.log.Info("account created", "email", email)
	return a, nil
}

// authenticate checks an account's password.
func (s *Server) authenticate(ctx context.Context, email, password string) (account, error) {
	a, _, err := s.getAccount(ctx, email)
	if errors.Is(err, errNoAccount) {
		bcrypt.CompareHashAndPassword(s.dummyHash, []byte(password))
		return account{}, errBadLogin
	}
	if err != nil {
		return account{}, err
	}
	if bcrypt.CompareHashAndPassword(a.PasswordHash, []byte(password)) != nil {
		return account{}, errBadLogin
	}
	return a, nil
}

func (s *Server) getAccount(ctx context.Context, email string) (account, kv.Version, error) {
	key := accountKey(email)
	if key == "" {
		return account{}, 0, errNoAccount
	}
	a, v, err := s.accounts.Get(ctx, key)
	if errors.Is(err, kv.ErrNotFound) {
		return account{}, 0, errNoAccount
	}
	if err != nil {
		return account{}, 0, fmt.Errorf("read account %s: %w", key, err)
	}
	return a, v, nil
}

// updateAccount applies fn to the account until its compare-and-set wins.
func (s *Server) updateAccount(ctx context.Context, key string, fn func(*account) error) (account, error) {
	for range maxCASRetries {
		a, v, err := s.getAccount(ctx, key)
		if err != nil {
			return account{}, err
		}
		if err := fn(&a); err != nil {
			return account{}, err
		}
		_, err = s.accounts.CAS(ctx, key, a, 0, v)
		if errors.Is(err, kv.ErrConflict) {
			continue
		}
		if err != nil {
			return account{}, fmt.Errorf("update account %s: %w", key, err)
		}
		return a, nil
	}
	return account{}, errContention
}

func (s *Server) listLine(ctx context.Context, key, uri string) error {
	_, err := s.updateAccount(ctx, key, func(a *account) error {
		if !slices.Contains(a.Lines, uri) {
			a.Lines = append(a.Lines, uri)
		}
		return nil
	})
	return err
}

func (s *Server) unlistLine(ctx context.Context, key, uri string) error {
	_, err := s.updateAccount(ctx, key, func(a *account) error {
		a.Lines = slices.DeleteFunc(a.Lines, func(l string) bool { return l == uri })
		return nil
	})
	if errors.Is(err, errNoAccount) {
		return nil
	}
	return err
}

// lines returns the numbers an account owns, skipping entries a crash left
// half-done (listed but not owned).
func (s *Server) lines(ctx context.Context, a account) ([]number, error) {
	key := accountKey(a.Email)
	out := make([]number, 0, len(a.Lines))
	for _, uri := range a.Lines {
		n, _, err := s.numbers.Get(ctx, uri)
		if errors.Is(err, kv.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read number %s: %w", uri, err)
		}
		if n.Owner == key {
			out = append(out, n)
		}
	}
	return out, nil
}

// ownedNumber returns a number the account owns, or errNoNumber.
func (s *Server) ownedNumber(ctx context.Context, a account, uri string) (number, kv.Version, error) {
	if !slices.Contains(a.Lines, uri) {
		return number{}, 0, errNoNumber
	}
	n, v, err := s.numbers.Get(ctx, uri)
	if errors.Is(err, kv.ErrNotFound) {
		return number{}, 0, errNoNumber
	}
	if err != nil {
		return number{}, 0, fmt.Errorf("read number %s: %w", uri, err)
	}
	if n.Owner != accountKey(a.Email) {
		return number{}, 0, errNoNumber
	}
	return n, v, nil
}

func freeKey(pstn bool, uri string) string {
	if pstn {
		return "p/" + uri
	}
	return "n/" + uri
}

var errEnough = errors.New("enough candidates")

// freeCandidates reads up to limit free numbers of a kind.
func (s *Server) freeCandidates(ctx context.Context, pstn bool, limit int) ([]string, error) {
	prefix := freeKey(pstn, "")
	var out []string
	err := s.free.Scan(ctx, prefix, func(key string, _ struct{}, _ kv.Version) error {
		out = append(out, strings.TrimPrefix(key, prefix))
		if len(out) >= limit {
			return errEnough
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return nil, fmt.Errorf("read free numbers: %w", err)
	}
	return out, nil
}

// claim takes a free number of a kind for the account. Concurrent claims of
// one number are decided by the number record's compare-and-set; candidates
// are drawn at random from the first few free entries so that concurrent
// allocators rarely collide.
func (s *Server) claim(ctx context.Context, key string, pstn bool, privateID string) (number, error) {
	for range maxCASRetries {
		cands, err := s.freeCandidates(ctx, pstn, 32)
		if err != nil {
			return number{}, err
		}
		if len(cands) == 0 {
			return number{}, errPoolEmpty
		}
		mrand.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
		for _, uri := range cands {
			n, err := s.claimNumber(ctx, key, uri, privateID, func(n number) bool { return n.PSTN == pstn })
			if errors.Is(err, errTaken) {
				continue
			}
			return n, err
		}
	}
	return number{}, errContention
}

var errTaken = errf(http.StatusConflict, "number is already allocated")

// claimNumber makes uri the account's if it is free and suits; errTaken if
// not. It lists the number in the account before claiming it, so that a
// claimed number is never invisible to its owner.
func (s *Server) claimNumber(ctx context.Context, key, uri, privateID string, suits func(number) bool) (number, error) {
	n, v, err := s.numbers.Get(ctx, uri)
	if errors.Is(err, kv.ErrNotFound) {
		s.dropFree(ctx, uri)
		return number{}, errTaken
	}
	if err != nil {
		return number{}, fmt.Errorf("read number %s: %w", uri, err)
	}
	if n.Owner != "" || !suits(n) {
		if n.Owner != "" {
			s.dropFree(ctx, uri)
		}
		return number{}, errTaken
	}
	if err := s.listLine(ctx, key, uri); err != nil {
		return number{}, err
	}
	if privateID == "" {
		privateID = privateFromPublic(uri)
	}
	n.Owner, n.PrivateID, n.Allocated = key, privateID, s.clock.Now().UTC()
	if _, err := s.numbers.CAS(ctx, uri, n, 0, v); err != nil {
		s.unlistLost(ctx, key, uri)
		if errors.Is(err, kv.ErrConflict) {
			return number{}, errTaken
		}
		return number{}, fmt.Errorf("claim number %s: %w", uri, err)
	}
	s.dropFree(ctx, uri)
	return n, nil
}

// unlistLost unlists a number whose claim failed, unless another request
// of the same account claimed it meanwhile: a failed compare-and-set means a
// newer write committed, so the owner read here is that write's.
func (s *Server) unlistLost(ctx context.Context, key, uri string) {
	if n, _, err := s.numbers.Get(ctx, uri); err == nil && n.Owner == key {
		return
	}
	if err := s.unlistLine(ctx, key, uri); err != nil {
		s.log.Warn("could not unlist a number after a failed claim", "number", uri, "err", err)
	}
}

// dropFree removes a number's free-list entries; a leftover entry only costs
// a later allocator one extra read.
func (s *Server) dropFree(ctx context.Context, uri string) {
	for _, pstn := range []bool{false, true} {
		if err := s.free.Delete(ctx, freeKey(pstn, uri)); err != nil {
			s.log.Warn("could not remove a free-list entry", "number", uri, "err", err)
		}
	}
}

// unclaim returns a number the account owns to the pool.
func (s *Server) unclaim(ctx context.Context, key, uri string) error {
	for range maxCASRetries {
		n, v, err := s.numbers.Get(ctx, uri)
		if errors.Is(err, kv.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read number %s: %w", uri, err)
		}
		if n.Owner != key {
			return nil
		}
		n.Owner, n.PrivateID, n.Allocated = "", "", time.Time{}
		_, err = s.numbers.CAS(ctx, uri, n, 0, v)
		if errors.Is(err, kv.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("free number %s: %w", uri, err)
		}
		if _, err := s.free.Put(ctx, freeKey(n.PSTN, uri), struct{}{}); err != nil {
			// CreateNumbers puts it back on the free list.
			return fmt.Errorf("return number %s to the free list: %w", uri, err)
		}
		return nil
	}
	return errContention
}

// allocate gives the account a new line from the pool, or with uri set a
// specific number (admin only), and provisions it. password is the new SIP
// password, empty when the line shares an existing private identity.
func (s *Server) allocate(ctx context.Context, a account, pstn bool, uri, privateID string, newPrivate, admin bool) (n number, password string, err error) {
	key := accountKey(a.Email)
	// A line shares an existing private identity when one is named and not
	// to be created. Ordinary users may only name one of their own; an
	// admin may name any, and the subscriber store checks it exists.
	shared := privateID != "" && !newPrivate
	if shared && !admin {
		owned, err := s.lines(ctx, a)
		if err != nil {
			return number{}, "", err
		}
		if !slices.ContainsFunc(owned, func(l number) bool { return l.PrivateID == privateID }) {
			return number{}, "", errf(http.StatusNotFound, "private identity %s is not one of this account's", privateID)
		}
	}
	for range maxCASRetries {
		if uri == "" {
			n, err = s.claim(ctx, key, pstn, privateID)
		} else {
			n, err = s.claimSpecific(ctx, key, uri, privateID)
		}
		if err != nil {
			return number{}, "", err
		}
		line := Line{PrivateID: n.PrivateID, PublicIDs: []string{n.URI}, Realm: n.Realm, IFC: defaultIFC(s.opts.HomeDomain)}
		if !shared {
			line.Password = sipPassword()
		}
		err = s.provision(ctx, line)
		if err == nil {
			s.log.Info("number allocated", "email", a.Email, "number", n.URI, "private_id", n.PrivateID, "shared", shared)
			return n, line.Password, nil
		}
		if uri == "" && errors.Is(err, ErrConflict) {
			// Provisioned by other means (Homestead's API, the users
			// tools): take it out of the pool and try another.
			s.retire(ctx, key, n.URI)
			continue
		}
		if berr := s.backOut(ctx, key, n.URI, false); berr != nil {
			s.log.Error("could not back out a failed allocation", "number", n.URI, "err", berr)
		}
		return number{}, "", err
	}
	return number{}, "", errContention
}

// retiredOwner owns pool numbers found provisioned outside Ellis; it is not
// an e-mail address, so no account can have it.
const retiredOwner = "(provisioned elsewhere)"

// retire hands a number the account just claimed to retiredOwner.
func (s *Server) retire(ctx context.Context, key, uri string) {
	s.log.Warn("pool number is already provisioned in the subscriber store; taking it out of the pool", "number", uri)
	if n, v, err := s.numbers.Get(ctx, uri); err == nil && n.Owner == key {
		n.Owner, n.PrivateID = retiredOwner, ""
		if _, err := s.numbers.CAS(ctx, uri, n, 0, v); err != nil {
			s.log.Warn("could not retire a number", "number", uri, "err", err)
		}
	}
	if err := s.unlistLine(ctx, key, uri); err != nil {
		s.log.Warn("could not unlist a retired number", "number", uri, "err", err)
	}
}

// claimSpecific claims a named number, creating it if the pool lacks it.
func (s *Server) claimSpecific(ctx context.Context, key, uri, privateID string) (number, error) {
	user, domain, ok := splitSIPURI(uri)
	if !ok {
		return number{}, errf(http.StatusBadRequest, "%q is not a SIP URI (sip:user@domain)", uri)
	}
	n, _, err := s.numbers.Get(ctx, uri)
	switch {
	case err == nil && n.Owner != "":
		return number{}, errf(http.StatusConflict, "%s is already allocated", uri)
	case err == nil:
		n, err = s.claimNumber(ctx, key, uri, privateID, func(number) bool { return true })
		if errors.Is(err, errTaken) {
			return number{}, errf(http.StatusConflict, "%s is already allocated", uri)
		}
		return n, err
	case !errors.Is(err, kv.ErrNotFound):
		return number{}, fmt.Errorf("read number %s: %w", uri, err)
	}
	// Not in the pool: create it already owned.
	if err := s.listLine(ctx, key, uri); err != nil {
		return number{}, err
	}
	if privateID == "" {
		privateID = privateFromPublic(uri)
	}
	n = number{URI: uri, PSTN: strings.HasPrefix(user, "+"), Realm: domain, Owner: key, PrivateID: privateID, Allocated: s.clock.Now().UTC()}
	if _, err := s.numbers.CAS(ctx, uri, n, 0, 0); err != nil {
		s.unlistLost(ctx, key, uri)
		if errors.Is(err, kv.ErrConflict) {
			return number{}, errf(http.StatusConflict, "%s is already allocated", uri)
		}
		return number{}, fmt.Errorf("create number %s: %w", uri, err)
	}
	return n, nil
}

// provision writes a new line to the subscriber store and gives it the
// default simservs document.
func (s *Server) provision(ctx context.Context, l Line) error {
	if err := s.subs.Create(ctx, l); err != nil {
		return storeError("create subscriber "+l.PublicIDs[0], err)
	}
	if err := s.simservs.Put(ctx, l.PublicIDs[0], s.simservs.Default()); err != nil {
		if derr := s.subs.Delete(ctx, l.PublicIDs[0]); derr != nil {
			s.log.Error("could not remove a subscriber after a failed simservs write", "number", l.PublicIDs[0], "err", derr)
		}
		return storeError("store simservs of "+l.PublicIDs[0], err)
	}
	return nil
}

// backOut returns a number to the pool and unlists it; with deprovision it
// first removes the line from the stores.
func (s *Server) backOut(ctx context.Context, key, uri string, deprovision bool) error {
	if deprovision {
		if err := s.subs.Delete(ctx, uri); err != nil {
			return storeError("delete subscriber "+uri, err)
		}
		if err := s.simservs.Delete(ctx, uri); err != nil {
			return storeError("delete simservs of "+uri, err)
		}
	}
	if err := s.unclaim(ctx, key, uri); err != nil {
		return err
	}
	return s.unlistLine(ctx, key, uri)
}

// release deletes one of the account's lines and returns its number to the
// pool.
func (s *Server) release(ctx context.Context, a account, uri string) error {
	n, _, err := s.ownedNumber(ctx, a, uri)
	if err != nil {
		return err
	}
	if n.PrivateID == privateFromPublic(uri) {
		// The private identity is named after this line: deleting it while
		// other lines use it would let the pool hand the name out again.
		owned, err := s.lines(ctx, a)
		if err != nil {
			return err
		}
		for _, l := range owned {
			if l.URI != uri && l.PrivateID == n.PrivateID {
				return errf(http.StatusConflict, "%s is the original public identity of %s, which %s also uses: delete that line first", uri, n.PrivateID, l.URI)
			}
		}
	}
	if err := s.backOut(ctx, accountKey(a.Email), uri, true); err != nil {
		return err
	}
	s.log.Info("number released", "email", a.Email, "number", uri)
	return nil
}

// deleteAccount releases every line of the account, then the account.
func (s *Server) deleteAccount(ctx context.Context, a account) error {
	owned, err := s.lines(ctx, a)
	if err != nil {
		return err
	}
	// Lines sharing another line's private identity go first.
	slices.SortStableFunc(owned, func(x, y number) int {
		return boolCmp(x.PrivateID == privateFromPublic(x.URI), y.PrivateID == privateFromPublic(y.URI))
	})
	for _, n := range owned {
		if err := s.release(ctx, a, n.URI); err != nil {
			return err
		}
		a.Lines = slices.DeleteFunc(a.Lines, func(l string) bool { return l == n.URI })
	}
	if err := s.accounts.Delete(ctx, accountKey(a.Email)); err != nil {
		return fmt.Errorf("delete account %s: %w", a.Email, err)
	}
	s.log.Info("account deleted", "email", a.Email)
	return nil
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// resetSIPPassword gives a line's private identity a new password.
func (s *Server) resetSIPPassword(ctx context.Context, a account, uri string) (string, error) {
	n, _, err := s.ownedNumber(ctx, a, uri)
	if err != nil {
		return "", err
	}
	pw := sipPassword()
	if err := s.subs.SetPassword(ctx, n.PrivateID, n.Realm, pw); err != nil {
		return "", storeError("set password of "+n.PrivateID, err)
	}
	s.log.Info("SIP password reset", "email", a.Email, "private_id", n.PrivateID)
	return pw, nil
}

// startRecovery records a new recovery token for the account and returns
// it, or "" if there is no such account.
func (s *Server) startRecovery(ctx context.Context, email string) (account, string, error) {
	token := rand.Text()
	sum := sha256.Sum256([]byte(token))
	a, err := s.updateAccount(ctx, email, func(a *account) error {
		a.RecoveryHash = sum[:]
		a.RecoveryExpiry = s.clock.Now().Add(recoveryLifetime).UTC()
		return nil
	})
	if errors.Is(err, errNoAccount) {
		return account{}, "", nil
	}
	if err != nil {
		return account{}, "", err
	}
	return a, token, nil
}

// finishRecovery sets a new password if the token is the account's pending
// one; an unknown account and a wrong token are the same error.
func (s *Server) finishRecovery(ctx context.Context, email, token, password string) error {
	if err := validPassword("password", password); err != nil {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.opts.PasswordCost)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	sum := sha256.Sum256([]byte(token))
	now := s.clock.Now()
	_, err = s.updateAccount(ctx, email, func(a *account) error {
		if len(a.RecoveryHash) == 0 || subtle.ConstantTimeCompare(a.RecoveryHash, sum[:]) != 1 || !now.Before(a.RecoveryExpiry) {
			return errBadToken
		}
		a.PasswordHash = hash
		a.RecoveryHash, a.RecoveryExpiry = nil, time.Time{}
		a.Epoch++
		return nil
	})
	if errors.Is(err, errNoAccount) {
		return errBadToken
	}
	if err == nil {
		s.log.Info("account password recovered", "email", email)
	}
	return err
}

// CreateNumbers adds count numbers from start to the pool: on-net numbers
// sip:<n>@<realm>, or PSTN numbers sip:+1<n>@<realm> (Clearwater's form),
// realm defaulting to the home domain. Numbers already present are counted,
// not changed, so a re-run is harmless; it also puts back on the free list
// any free number an interrupted release left off it.
func (s *Server) CreateNumbers(ctx context.Context, start, count int64, pstn bool, realm string) (created, present int, err error) {
	if realm == "" {
		realm = s.opts.HomeDomain
	}
	if !validHost(realm) {
		return 0, 0, fmt.Errorf("realm %q is not a domain name", realm)
	}
	if start < 0 || count < 0 {
		return 0, 0, fmt.Errorf("start %d and count %d must not be negative", start, count)
	}
	const chunk, workers = 4096, 16
	for base := int64(0); base < count; base += chunk {
		uris := make([]string, 0, min(chunk, count-base))
		for i := base; i < count && i < base+chunk; i++ {
			if pstn {
				uris = append(uris, fmt.Sprintf("sip:+1%d@%s", start+i, realm))
			} else {
				uris = append(uris, fmt.Sprintf("sip:%d@%s", start+i, realm))
			}
		}
		c, p, free, err := s.createChunk(ctx, uris, pstn, realm, workers)
		created += c
		present += p
		if err != nil {
			return created, present, err
		}
		items := make([]kv.BatchItem, len(free))
		for i, uri := range free {
			items[i] = kv.BatchItem{Key: s.free.Key(freeKey(pstn, uri)), Value: []byte("{}")}
		}
		// Numbers created above stay off the free list if this fails; the
		// next run puts them on it.
		if err := s.opts.KV.PutBatch(ctx, items); err != nil {
			return created, present, fmt.Errorf("add numbers to the free list: %w", err)
		}
	}
	s.log.Info("numbers created", "start", start, "count", count, "pstn", pstn, "realm", realm, "created", created, "present", present)
	return created, present, nil
}

// createChunk creates the numbers of one chunk concurrently, returning the
// ones that are free (new, or present and unowned).
func (s *Server) createChunk(ctx context.Context, uris []string, pstn bool, realm string, workers int) (created, present int, free []string, err error) {
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
		next  = make(chan string)
	)
	note := func(uri string, isNew, isFree bool, e error) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case e != nil:
			if first == nil {
				first = e
			}
			return
		case isNew:
			created++
		default:
			present++
		}
		if isFree {
			free = append(free, uri)
		}
	}
	for range workers {
		wg.Go(func() {
			for uri := range next {
				n := number{URI: uri, PSTN: pstn, Realm: realm}
				_, err := s.numbers.CAS(ctx, uri, n, 0, 0)
				if err == nil {
					note(uri, true, true, nil)
					continue
				}
				if !errors.Is(err, kv.ErrConflict) {
					note(uri, false, false, fmt.Errorf("create number %s: %w", uri, err))
					continue
				}
				cur, _, err := s.numbers.Get(ctx, uri)
				if err != nil {
					note(uri, false, false, fmt.Errorf("read number %s: %w", uri, err))
					continue
				}
				note(uri, false, cur.Owner == "" && cur.PSTN == pstn, nil)
			}
		})
	}
	for _, uri := range uris {
		mu.Lock()
		stop := first != nil
		mu.Unlock()
		if stop {
			break
		}
		next <- uri
	}
	close(next)
	wg.Wait()
	return created, present, free, first
}

// sipPassword returns a random SIP password of 12 characters that are hard
// to confuse with each other (about 70 bits).
func sipPassword() string {
	const alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 12)
	for i := range b {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			panic(err) // crypto/rand does not fail
		}
		b[i] = alphabet[n.Int64()]
	}
	return string(b)
}

// privateFromPublic is Ellis's private identity for a public one:
// sip:6505550000@example.com → 6505550000@example.com.
func privateFromPublic(uri string) string {
	return strings.TrimPrefix(strings.TrimPrefix(uri, "sips:"), "sip:")
}

// splitSIPURI returns the user and host of sip:user@host.
func splitSIPURI(uri string) (user, host string, ok bool) {
	rest, found := strings.CutPrefix(uri, "sip:")
	if !found {
		return "", "", false
	}
	user, host, found = strings.Cut(rest, "@")
	if !found || user == "" || !validHost(host) || strings.ContainsAny(user, " \t<>\"/;?") {
		return "", "", false
	}
	return user, host, true
}

// validHost accepts a DNS name or IPv4 address.
func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// formatNumber is a number as shown: NANP numbers as (650) 555-0000.
func formatNumber(user string) string {
	digits, prefix := user, ""
	if d, ok := strings.CutPrefix(user, "+1"); ok {
		digits, prefix = d, "+1 "
	}
	if len(digits) != 10 || strings.Trim(digits, "0123456789") != "" {
		return user
	}
	return prefix + "(" + digits[:3] + ") " + digits[3:6] + "-" + digits[6:]
}
