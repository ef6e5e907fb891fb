package dashboard

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var checklists = schema.GroupResource{Group: "deploy.tminus.dev", Resource: "deploymentchecklists"}

// webhookDenial is a denial as the API server passes on an admission webhook's answer
// (controller-runtime's admission.Denied: 403, Forbidden; admission.Errored(code)).
func webhookDenial(code int32, reason metav1.StatusReason, msg string) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: code, Reason: reason,
		Message: `admission webhook "vapproval.tminus.dev" denied the request: ` + msg}}
}

// unreachable is what client-go returns when nothing listens at the API server's
// address.
func unreachable() error {
	return &url.Error{Op: "Get", URL: "https://127.0.0.1:6443/apis/deploy.tminus.dev/v1alpha1",
		Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
}

func TestAButtonsFailureIsAnsweredWithTheStatusThatFitsTheAPIServersAnswer(t *testing.T) {
	g := NewWithT(t)
	for _, c := range []struct {
		what string
		err  error
		want int
	}{
		{"RBAC refuses the verb", apierrors.NewForbidden(checklists, "checkout-v2", errors.New(`User "mallory" cannot patch`)), http.StatusForbidden},
		{"the approval webhook denies the sign-off", webhookDenial(403, metav1.StatusReasonForbidden, `user "mallory" may not approve`), http.StatusForbidden},
		{"a webhook cannot read the request", webhookDenial(400, "", "cannot decode"), http.StatusBadRequest},
		{"a webhook fails", webhookDenial(500, "", "cannot list checklists"), http.StatusBadGateway},
		{"the checklist changed meanwhile, past the retries", apierrors.NewConflict(checklists, "checkout-v2", errors.New("the object has been modified")), http.StatusConflict},
		{"the annotation is invalid", apierrors.NewInvalid(schema.GroupKind{Group: "deploy.tminus.dev", Kind: "DeploymentChecklist"}, "checkout-v2",
			field.ErrorList{field.Invalid(field.NewPath("metadata", "annotations"), "x", "bad key")}), http.StatusUnprocessableEntity},
		{"a bad request", apierrors.NewBadRequest("malformed patch"), http.StatusBadRequest},
		{"the checklist is gone", apierrors.NewNotFound(checklists, "checkout-v2"), http.StatusNotFound},
		{"the checklist is gone, said while finding the user", fmt.Errorf("finding the current user: %w", apierrors.NewNotFound(checklists, "x")), http.StatusNotFound},
		{"the API server is throttling", apierrors.NewTooManyRequests("slow down", 1), http.StatusTooManyRequests},
		{"the API server fails", apierrors.NewInternalError(errors.New("etcd")), http.StatusBadGateway},
		{"the API server is unavailable", apierrors.NewServiceUnavailable("starting"), http.StatusBadGateway},
		{"the kubeconfig's credentials are refused", apierrors.NewUnauthorized("token expired"), http.StatusBadGateway},
		{"the API server does not answer in time", apierrors.NewTimeoutError("etcd slow", 1), http.StatusGatewayTimeout},
		{"the request times out on the way", fmt.Errorf("finding the current user: %w", context.DeadlineExceeded), http.StatusGatewayTimeout},
		{"the API server cannot be reached", unreachable(), http.StatusBadGateway},
		{"the API server cannot be reached, wrapped", fmt.Errorf("finding the current user: %w", unreachable()), http.StatusBadGateway},
		{"the plugin refuses the request before sending it", errors.New("--reason is required: say why"), http.StatusUnprocessableEntity},
	} {
		g.Expect(StatusOf(c.err)).To(Equal(c.want), c.what)
	}
}

// failingActions fail every button with err.
type failingActions struct {
	noActions
	err error
}

func (a failingActions) Approve(context.Context, string, string, string) (string, error) {
	return "", a.err
}

func TestAButtonsRefusalIsShownInTheAPIServersWordsWithTheStatusThatFits(t *testing.T) {
	g := NewWithT(t)
	for _, c := range []struct {
		err  error
		want int
	}{
		{webhookDenial(403, metav1.StatusReasonForbidden, `user "mallory" may not approve role deployment-lead`), http.StatusForbidden},
		{apierrors.NewConflict(checklists, "checkout-v1", errors.New("the object has been modified")), http.StatusConflict},
		{apierrors.NewNotFound(checklists, "checkout-v1"), http.StatusNotFound},
		{unreachable(), http.StatusBadGateway},
	} {
		s, err := New(Options{Address: "127.0.0.1", Port: 3100, Namespace: "shop", Actions: failingActions{err: c.err},
			Hub: staticHub(release(1, time.Now()))})
		g.Expect(err).NotTo(HaveOccurred())
		req := httptest.NewRequest(http.MethodGet, "/?token="+s.token, nil)
		req.Host = "127.0.0.1:3100"
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, req)
		form := url.Values{"action": {"approve"}, "role": {"deployment-lead"}}
		req = httptest.NewRequest(http.MethodPost, "/release/shop/checkout-v1", strings.NewReader(form.Encode()))
		req.Host = "127.0.0.1:3100"
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "http://127.0.0.1:3100")
		req.AddCookie(w.Result().Cookies()[0])
		w = httptest.NewRecorder()
		s.Handler().ServeHTTP(w, req)
		g.Expect(w.Code).To(Equal(c.want), c.err.Error())
		g.Expect(w.Body.String()).To(ContainSubstring(`<div class="refusal" role="alert">`), "the release's page, with the refusal")
		g.Expect(w.Body.String()).To(ContainSubstring(template.HTMLEscapeString(c.err.Error())), "in the API server's words")
	}
}
