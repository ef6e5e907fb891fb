package dashboard

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// StatusOf is the HTTP status a button answers with when its command failed with err,
// so that what the page says in words its status says too:
//   - the API server's own answer, when it gave one: 403 for a refusal (RBAC, or an
//     admission webhook's denial, which the API server reports as Forbidden), 409 for
//     a conflict, 422 for an invalid object, 400 for a bad request or a webhook that
//     could not read it, 404 for a checklist that is gone, 429 for too many requests;
//   - 502 when the API server answered with an error of its own (5xx: a webhook that
//     failed, an etcd timeout) or refused the kubeconfig's credentials (401: the
//     dashboard's session is fine, the user's credentials are not, and a 401 here
//     would say the opposite);
//   - 504 when the API server did not answer in time, 502 when it could not be
//     reached at all;
//   - 422 for the plugin's own refusals before anything is sent (a reason missing, no
//     sign-off to revoke): the request as given cannot be carried out.
func StatusOf(err error) int {
	if err == nil {
		return http.StatusOK
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		code := int(status.Status().Code)
		switch {
		case apierrors.IsForbidden(err):
			return http.StatusForbidden
		case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err):
			return http.StatusConflict
		case apierrors.IsInvalid(err):
			return http.StatusUnprocessableEntity
		case apierrors.IsNotFound(err):
			return http.StatusNotFound
		case apierrors.IsBadRequest(err):
			return http.StatusBadRequest
		case apierrors.IsTooManyRequests(err):
			return http.StatusTooManyRequests
		case apierrors.IsTimeout(err), apierrors.IsServerTimeout(err):
			return http.StatusGatewayTimeout
		case apierrors.IsUnauthorized(err), code >= 500:
			return http.StatusBadGateway
		case code >= 400:
			return code
		}
		return http.StatusBadGateway
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return http.StatusGatewayTimeout
	}
	var netErr net.Error
	var urlErr *url.Error
	if errors.As(err, &netErr) || errors.As(err, &urlErr) {
		return http.StatusBadGateway
	}
	return http.StatusUnprocessableEntity
}
