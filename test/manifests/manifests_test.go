// Package manifests checks that what `make deploy` installs is valid: the kustomize
// output of config/default and config/with-cert-manager, applied with a server-side
// dry run against a real API server.
package manifests

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tminus-dev/tminus/test/testbed"
)

// render runs the kustomize the Makefile installs (TMINUS_KUSTOMIZE, or bin/kustomize)
// on config/dir.
func render(t *testing.T, dir string) []byte {
	t.Helper()
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := os.Getenv("TMINUS_KUSTOMIZE")
	if bin == "" {
		bin = filepath.Join(root, "bin", "kustomize")
	}
	out, err := exec.Command(bin, "build", filepath.Join(root, "config", dir)).Output()
	if err != nil {
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			t.Fatalf("kustomize build config/%s: %v\n%s", dir, err, ee.Stderr)
		}
		t.Fatalf("kustomize build config/%s: %v (run make kustomize)", dir, err)
	}
	return out
}

// build renders config/dir into objects.
func build(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	return decode(t, render(t, dir))
}

// decode reads a multi-document YAML stream into objects.
func decode(t *testing.T, out []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return objs
			}
			t.Fatal(err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, &u)
		}
	}
}

// dryRun applies every object server-side without persisting it. Kinds whose API is not
// installed here (cert-manager's, the Prometheus operator's) are returned, not failed.
func dryRun(t *testing.T, bed *testbed.Bed, objs []*unstructured.Unstructured) (applied, skipped []string) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	for _, o := range objs {
		id := o.GetKind() + "/" + o.GetName()
		if o.GetKind() == "Namespace" {
			// Namespaced objects need their namespace to exist for the dry run.
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: o.GetName()}}
			g.Expect(client.IgnoreAlreadyExists(bed.Client.Create(ctx, ns))).To(Succeed())
			applied = append(applied, id)
			continue
		}
		err := bed.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(o), client.DryRunAll, client.ForceOwnership,
			client.FieldOwner("manifests-test"))
		if meta.IsNoMatchError(err) {
			skipped = append(skipped, id)
			continue
		}
		g.Expect(err).NotTo(HaveOccurred(), "server-side dry run of %s", id)
		applied = append(applied, id)
	}
	return applied, skipped
}

func TestTheDeployManifestsAreValidOnARealAPIServer(t *testing.T) {
	g := NewWithT(t)
	bed := testbed.New(t, testbed.Options{})

	applied, skipped := dryRun(t, bed, build(t, "default"))
	g.Expect(skipped).To(BeEmpty())
	g.Expect(applied).To(ContainElements(
		"CustomResourceDefinition/deploymentchecklists.deploy.tminus.dev",
		"Deployment/tminus-controller-manager",
		"ClusterRole/tminus-manager-role",
		"ServiceAccount/tminus-controller-manager",
		// The admission webhooks are part of the default install, no cert-manager needed.
		"MutatingWebhookConfiguration/tminus-admission",
		"Service/tminus-webhook-service",
		"Role/tminus-webhook-certificate",
	))

	// Two replicas sharing the checklists in shards.
	sharded := build(t, "sharded")
	applied, skipped = dryRun(t, bed, sharded)
	g.Expect(skipped).To(BeEmpty())
	g.Expect(applied).To(ContainElement("Deployment/tminus-controller-manager"))
	for _, o := range sharded {
		if o.GetKind() != "Deployment" {
			continue
		}
		replicas, _, _ := unstructured.NestedInt64(o.Object, "spec", "replicas")
		g.Expect(replicas).To(BeEquivalentTo(2))
		containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		args, _, _ := unstructured.NestedStringSlice(containers[0].(map[string]any), "args")
		g.Expect(args).To(ContainElement("--shards=8"))
	}

	applied, skipped = dryRun(t, bed, build(t, "with-cert-manager"))
	g.Expect(applied).To(ContainElements("MutatingWebhookConfiguration/tminus-admission", "Service/tminus-webhook-service"))
	g.Expect(skipped).To(ConsistOf("Issuer/tminus-selfsigned-issuer", "Certificate/tminus-webhook-cert"),
		"only cert-manager's kinds are not installed on the test bed")
}

// TestDistInstallYAMLIsTheDefaultConfigWithTheReleaseImage: `kubectl apply -f
// dist/install.yaml` installs what config/default does, with the release's image
// (make build-installer).
func TestDistInstallYAMLIsTheDefaultConfigWithTheReleaseImage(t *testing.T) {
	g := NewWithT(t)
	root, err := testbed.RepoRoot()
	g.Expect(err).NotTo(HaveOccurred())
	release, err := os.ReadFile(filepath.Join(root, "hack", "release-version"))
	g.Expect(err).NotTo(HaveOccurred())
	image := "ghcr.io/tminus-dev/tminus:" + strings.TrimSpace(string(release))
	want := strings.ReplaceAll(string(render(t, "default")), "image: controller:latest", "image: "+image)
	got, err := os.ReadFile(filepath.Join(root, "dist", "install.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(got)).To(Equal(want), "dist/install.yaml is stale: run make build-installer")
	g.Expect(string(got)).To(ContainSubstring("image: " + image))
}

func TestTheManagerRunsWithTheRestrictedPodSecurityProfile(t *testing.T) {
	g := NewWithT(t)
	for _, o := range build(t, "default") {
		if o.GetKind() != "Deployment" {
			continue
		}
		pod, _, _ := unstructured.NestedMap(o.Object, "spec", "template", "spec")
		g.Expect(pod).To(HaveKeyWithValue("securityContext", HaveKeyWithValue("runAsNonRoot", true)))
		containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		sc := containers[0].(map[string]any)["securityContext"].(map[string]any)
		g.Expect(sc).To(HaveKeyWithValue("readOnlyRootFilesystem", true))
		g.Expect(sc).To(HaveKeyWithValue("allowPrivilegeEscalation", false))
		g.Expect(sc).To(HaveKeyWithValue("capabilities", HaveKeyWithValue("drop", ConsistOf("ALL"))))
	}
}

// roleRule is one rule of a shipped Role or ClusterRole.
type roleRule struct {
	kind, role string
	rule       map[string]any
}

// roleRules lists every rule of the Roles and ClusterRoles config/default installs.
func roleRules(t *testing.T) []roleRule {
	t.Helper()
	var out []roleRule
	for _, o := range build(t, "default") {
		if o.GetKind() != "ClusterRole" && o.GetKind() != "Role" {
			continue
		}
		rules, _, _ := unstructured.NestedSlice(o.Object, "rules")
		for _, r := range rules {
			out = append(out, roleRule{kind: o.GetKind(), role: o.GetName(), rule: r.(map[string]any)})
		}
	}
	return out
}

// TestRBACNeverListsOrWatchesSecrets: cluster-wide, the manager may only get a Secret
// (Prometheus credentials a checklist names); in its own namespace it may also create
// its webhook certificate's Secret and update that one, by name. Nothing lists or
// watches Secrets.
func TestRBACNeverListsOrWatchesSecrets(t *testing.T) {
	g := NewWithT(t)
	for _, rr := range roleRules(t) {
		rule := rr.rule
		resources, _ := rule["resources"].([]any)
		for _, res := range resources {
			if res != "secrets" {
				continue
			}
			g.Expect(rule["verbs"]).NotTo(ContainElement(BeElementOf("list", "watch", "*")), "%s", rr.role)
			if rr.kind == "ClusterRole" {
				g.Expect(rule["verbs"]).To(ConsistOf("get"), "%s may only get Secrets", rr.role)
				continue
			}
			g.Expect(rr.role).To(Equal("tminus-webhook-certificate"))
			if _, named := rule["resourceNames"]; named {
				g.Expect(rule["resourceNames"]).To(ConsistOf("tminus-webhook-cert"))
				g.Expect(rule["verbs"]).To(ConsistOf("get", "update"))
			} else {
				g.Expect(rule["verbs"]).To(ConsistOf("create"), "create cannot be limited by name")
			}
		}
	}
}

// TestOnlyTheApproverRoleGrantsTheSignOff: administering or editing checklists is not
// approving releases; no shipped role but the approver one holds the verb approve,
// explicitly or through '*'.
func TestOnlyTheApproverRoleGrantsTheSignOff(t *testing.T) {
	g := NewWithT(t)
	for _, rr := range roleRules(t) {
		verbs, _ := rr.rule["verbs"].([]any)
		if rr.role == "tminus-deploymentchecklist-approver-role" {
			g.Expect(verbs).To(ContainElement("approve"))
			continue
		}
		g.Expect(verbs).NotTo(ContainElement(BeElementOf("approve", "*")), "%s grants the sign-off", rr.role)
	}
}

// TestOnlyTheResponderRoleGrantsRollbackAndAbort: editing or administering checklists
// is not deciding to undo a release; no shipped role but the responder one holds the
// verbs rollback and abort, explicitly or through '*'.
func TestOnlyTheResponderRoleGrantsRollbackAndAbort(t *testing.T) {
	g := NewWithT(t)
	found := false
	for _, rr := range roleRules(t) {
		verbs, _ := rr.rule["verbs"].([]any)
		if rr.role == "tminus-deploymentchecklist-responder-role" {
			g.Expect(verbs).To(ContainElements("rollback", "abort", "patch"))
			found = true
			continue
		}
		g.Expect(verbs).NotTo(ContainElement(BeElementOf("rollback", "abort", "*")), "%s grants a rollback or an abort", rr.role)
	}
	g.Expect(found).To(BeTrue(), "the responder role is shipped")
}

// TestOnlyTheAdminRoleWritesClusterTemplates: a cluster template is the platform team's
// checklist for every namespace; a namespace's editors write their own templates and
// read the cluster's.
func TestOnlyTheAdminRoleWritesClusterTemplates(t *testing.T) {
	g := NewWithT(t)
	verbsOn := map[string]map[string][]any{}
	for _, rr := range roleRules(t) {
		if rr.kind != "ClusterRole" {
			continue
		}
		if verbsOn[rr.role] == nil {
			verbsOn[rr.role] = map[string][]any{}
		}
		resources, _ := rr.rule["resources"].([]any)
		for _, res := range resources {
			verbsOn[rr.role][res.(string)] = append(verbsOn[rr.role][res.(string)], rr.rule["verbs"].([]any)...)
		}
	}
	for role, on := range verbsOn {
		for _, res := range []string{"clusterchecklisttemplates", "clusterchangefreezes"} {
			if role == "tminus-deploymentchecklist-admin-role" {
				g.Expect(on[res]).To(ContainElements("create", "update", "delete"))
				continue
			}
			g.Expect(on[res]).NotTo(ContainElement(BeElementOf("create", "update", "patch", "delete", "*")),
				"%s writes %s", role, res)
		}
	}
	g.Expect(verbsOn["tminus-deploymentchecklist-editor-role"]["changefreezes"]).To(ContainElement("create"))
	g.Expect(verbsOn["tminus-deploymentchecklist-editor-role"]["notificationpolicies"]).To(ContainElement("create"))
	g.Expect(verbsOn["tminus-deploymentchecklist-editor-role"]["clusterchecklisttemplates"]).To(ContainElement("get"))
	g.Expect(verbsOn["tminus-deploymentchecklist-editor-role"]["checklisttemplates"]).To(ContainElement("create"))
	g.Expect(verbsOn["tminus-deploymentchecklist-viewer-role"]["checklisttemplates"]).To(ContainElement("list"))
}
