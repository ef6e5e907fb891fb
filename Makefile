# RELEASE is the version being prepared: the image dist/install.yaml and the Helm chart
# name, the plugin archives' krew manifest.
RELEASE ?= $(shell cat hack/release-version)
# Image URL to use all building/pushing image targets
IMG ?= ghcr.io/tminus-dev/tminus:$(RELEASE)
# PLATFORMS of the manager image; PLUGIN_PLATFORMS of the kubectl plugin's archives.
IMAGE_PLATFORMS ?= linux/amd64,linux/arm64
PLUGIN_PLATFORMS ?= linux/amd64,linux/arm64,darwin/amd64,darwin/arm64,windows/amd64,windows/arm64
# VERSION is what the manager and the plugin say with --version.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS ?= -X github.com/tminus-dev/tminus/internal/version.Version=$(VERSION)
# YEAR defines the year value used for substituting the YEAR placeholder in the boilerplate header.
YEAR ?= $(shell date +%Y)

# Get the currently used golang install path (in GOPATH/bin, unless GOBIN is set)
ifeq (,$(shell go env GOBIN))
GOBIN=$(shell go env GOPATH)/bin
else
GOBIN=$(shell go env GOBIN)
endif

# CONTAINER_TOOL defines the container tool to be used for building images.
# Be aware that the target commands are only tested with Docker which is
# scaffolded by default. However, you might want to replace it to use other
# tools. (i.e. podman)
CONTAINER_TOOL ?= docker

# Setting SHELL to bash allows bash commands to be executed by recipes.
# Options are set to exit when a recipe line exits non-zero or a piped command fails.
SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

.PHONY: all
all: build

##@ General

# The help target prints out all targets with their descriptions organized
# beneath their categories. The categories are represented by '##@' and the
# target descriptions by '##'. The awk command is responsible for reading the
# entire set of makefiles included in this invocation, looking for lines of the
# file as xyz: ## something, and then pretty-format the target and help. Then,
# if there's a line with ##@ something, that gets pretty-printed as a category.
# More info on the usage of ANSI control characters for terminal formatting:
# https://en.wikipedia.org/wiki/ANSI_escape_code#SGR_parameters
# More info on the awk command:
# http://linuxcommand.org/lc3_adv_awk.php

.PHONY: help
help: ## Display this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-15s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate WebhookConfiguration, ClusterRole and CustomResourceDefinition objects.
	"$(CONTROLLER_GEN)" rbac:roleName=manager-role crd paths="./..." output:crd:artifacts:config=config/crd/bases
	go run ./hack/apidocs > docs/api.md

.PHONY: generate
generate: controller-gen ## Generate code containing DeepCopy, DeepCopyInto, and DeepCopyObject method implementations.
	"$(CONTROLLER_GEN)" object:headerFile="hack/boilerplate.go.txt",year=$(YEAR) paths="./..."

.PHONY: fmt
fmt: ## Run go fmt against code.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet against code.
	go vet ./...

# The real components the tests run against (kube-apiserver, etcd,
# kube-controller-manager, kube-scheduler, kubectl, kwok, Prometheus), built from Go
# modules into bin/<component>-<version>/ by hack/build-testbins.sh. A second run is a
# no-op. Their paths reach the tests through these variables.
TESTBINS_ENV = $(shell hack/build-testbins.sh --print-env)

.PHONY: testbins
testbins: ## Build the test bed's binaries from Go modules (once; cached in bin/).
	hack/build-testbins.sh all

.PHONY: chromium
chromium: ## Install Debian's chromium for the dashboard's browser test (root, apt; CI).
	hack/install-chromium.sh

.PHONY: testbins-demo
testbins-demo: ## Build what make demo runs (all of the test bed's binaries but kubectl).
	hack/build-testbins.sh demo

# Packages (and a package's parallel tests) run TEST_PARALLEL at once. Most of a test's
# time is waiting on the test bed (a rollout, a phase opening, a Prometheus scrape), not
# CPU, so twice the cores keeps two cores busy (docs/testing.md has the figures).
TEST_PARALLEL ?= 4

.PHONY: test
test: manifests generate fmt vet testbins kustomize chromium ## Run all tests against the real test bed (chromium: the dashboard's browser test).
	env $(TESTBINS_ENV) TMINUS_KUSTOMIZE=$(KUSTOMIZE) go test ./... -count=1 -timeout 30m \
		-p $(TEST_PARALLEL) -parallel $(TEST_PARALLEL) $(TEST_ARGS)

.PHONY: release-check
release-check: ## Build and check the release for every platform (IMAGE_PLATFORMS, PLUGIN_PLATFORMS); make test checks this machine's only.
	TMINUS_IMAGE_PLATFORMS=$(IMAGE_PLATFORMS) TMINUS_PLUGIN_PLATFORMS=$(PLUGIN_PLATFORMS) go test ./test/release -count=1 -timeout 45m

RUNS ?= 5
.PHONY: test-loaded
test-loaded: ## Run make test RUNS (5) times, each beside a make demo in a loop; lists every test that failed once.
	hack/loaded-tests.sh $(RUNS)

# make chaos: SEEDS random orders of LENGTH events each, PARALLEL at once on one test bed,
# against two replicas of the real manager (test/chaos, docs/reliability.md). FROM is the
# first seed; MINIMIZE=1 shrinks each failing seed's events (reruns it many times); GEN
# draws with an earlier generation of the generator (the current one when empty).
SEEDS ?= 20
PARALLEL ?= 4
LENGTH ?= 30
FROM ?= 1

.PHONY: chaos
chaos: testbins ## Run SEEDS random orders of events (PARALLEL at once) and check the gate's invariants; prints events/s, checks and seeds passed.
	env $(TESTBINS_ENV) go test ./test/chaos -run TestSeeds -count=1 -timeout 0 -v -chaos.seeds=$(SEEDS) \
		-chaos.parallel=$(PARALLEL) -chaos.length=$(LENGTH) -chaos.from=$(FROM) $(if $(MINIMIZE),-chaos.minimize) $(if $(GEN),-chaos.gen=$(GEN))

FUZZTIME ?= 10s
FUZZ_TARGETS = ./internal/approval:FuzzParseEntry ./internal/checklist:FuzzParseThreshold \
	./internal/checklist:FuzzPlanDurations ./internal/checklist:FuzzDecide ./internal/prometheus:FuzzResponse \
	./internal/templates:FuzzSubstitution

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME (10s) each; seeds live in testdata/fuzz.
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzzing $$name in $$pkg for $(FUZZTIME)"; \
		go test $$pkg -run XXX -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) || exit 1; \
	done

.PHONY: bench-scale
bench-scale: testbins ## Measure sizes, a dead Prometheus, distinct queries and 2 replicas (SIZES=N:M[:B][:d][:rR][:tT][:eK][:qR],...: tT releases of T targets, eK ended checklists K a target, qR the history limit's deletes/s; about an hour); writes bench-scale.json.
	env $(TESTBINS_ENV) go run ./hack/benchscale $(if $(SIZES),--sizes $(SIZES))

.PHONY: bench-past
bench-past: testbins ## Time 200 held writes through the API server to the Deployment gate with 1 and 1,000 past checklists on the Deployment, back to back and each once the last is observed (PAST=1000, WRITES=200); writes bench-past.json.
	env $(TESTBINS_ENV) go run ./hack/benchscale --past $(or $(PAST),1000) --writes $(or $(WRITES),200) --out bench-past.json

.PHONY: bench-peer
bench-peer: testbins ## Resident memory of tminus beside a peer gating GATES releases (1000) with two metrics every 10 s; ARGO_ROLLOUTS=<rollouts-controller binary> ARGO_ROLLOUTS_CRDS=<its manifests/crds>, built by you (docs/performance.md); writes bench-peer.json.
	env $(TESTBINS_ENV) go run ./hack/benchpeer $(if $(GATES),--gates $(GATES))

.PHONY: bench-dashboard
bench-dashboard: ## Load the dashboard's list of 1,000 releases in headless Chromium (hack/install-chromium.sh) ten times and print the browser's timings.
	go test ./internal/dashboard/ -run '^$$' -bench LoadingTheListOf1000ReleasesInABrowser -benchtime 10x -v

.PHONY: demo
demo: testbins-demo ## Run the demo: a local control plane, Prometheus, a demo service, a good release and a rolled-back one.
	env $(TESTBINS_ENV) go run ./hack/demo $(DEMO_ARGS)

.PHONY: verify-generated
verify-generated: manifests generate build-installer chart ## Fail when generated files differ from what is committed.
	@git diff --exit-code -- api config docs/api.md dist/install.yaml charts || { echo "run 'make manifests generate build-installer chart' and commit the result"; exit 1; }
	@test -z "$$(git status --porcelain -- charts dist/install.yaml | grep '^??')" || { git status --porcelain -- charts; echo "untracked generated files: add them"; exit 1; }

.PHONY: lint
lint: golangci-lint ## Run golangci-lint linter
	"$(GOLANGCI_LINT)" run

.PHONY: lint-fix
lint-fix: golangci-lint ## Run golangci-lint linter and perform fixes
	"$(GOLANGCI_LINT)" run --fix

.PHONY: lint-config
lint-config: golangci-lint ## Verify golangci-lint linter configuration
	"$(GOLANGCI_LINT)" config verify

##@ Build

.PHONY: build
build: manifests generate fmt vet ## Build manager binary.
	go build -ldflags "$(LDFLAGS)" -o bin/manager ./cmd

.PHONY: plugin
plugin: ## Install the kubectl plugin (kubectl checklist ...) into $GOBIN.
	go install -ldflags "$(LDFLAGS)" ./cmd/kubectl-checklist

.PHONY: deploy-with-cert-manager
deploy-with-cert-manager: manifests kustomize ## Deploy with cert-manager making the webhook certificate.
	"$(KUSTOMIZE)" build config/with-cert-manager | sed 's|image: controller:latest|image: $(IMG)|' | "$(KUBECTL)" apply -f -

.PHONY: run
run: manifests generate fmt vet ## Run a controller from your host.
	go run ./cmd/main.go

# If you wish to build the manager image targeting other platforms you can use the --platform flag.
# (i.e. docker build --platform linux/arm64). However, you must enable docker buildKit for it.
# More info: https://docs.docker.com/develop/develop-images/build_enhancements/
# Override BASE_IMAGE to build from another registry, e.g.
# make docker-build IMG=<img> BASE_IMAGE=docker.io/library/golang:1.26
.PHONY: docker-build
docker-build: ## Build docker image with the manager.
	$(CONTAINER_TOOL) build $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) -t ${IMG} .

.PHONY: docker-push
docker-push: ## Push docker image with the manager.
	$(CONTAINER_TOOL) push ${IMG}

# PLATFORMS defines the target platforms for the manager image be built to provide support to multiple
# architectures. (i.e. make docker-buildx IMG=myregistry/mypoperator:0.0.1). To use this option you need to:
# - be able to use docker buildx. More info: https://docs.docker.com/build/buildx/
# - have enabled BuildKit. More info: https://docs.docker.com/develop/develop-images/build_enhancements/
# - be able to push the image to your registry (i.e. if you do not set a valid value via IMG=<myregistry/image:<tag>> then the export will fail)
# To adequately provide solutions that are compatible with multiple platforms, you should consider using this option.
PLATFORMS ?= linux/arm64,linux/amd64,linux/s390x,linux/ppc64le
.PHONY: docker-buildx
docker-buildx: ## Build and push docker image for the manager for cross-platform support
	# copy existing Dockerfile and insert --platform=${BUILDPLATFORM} into Dockerfile.cross, and preserve the original Dockerfile
	sed -e '1 s/\(^FROM\)/FROM --platform=\$$\{BUILDPLATFORM\}/; t' -e ' 1,// s//FROM --platform=\$$\{BUILDPLATFORM\}/' Dockerfile > Dockerfile.cross
	- $(CONTAINER_TOOL) buildx create --name tminus-builder
	$(CONTAINER_TOOL) buildx use tminus-builder
	- $(CONTAINER_TOOL) buildx build --push --platform=$(PLATFORMS) $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) --tag ${IMG} -f Dockerfile.cross .
	- $(CONTAINER_TOOL) buildx rm tminus-builder
	rm Dockerfile.cross

.PHONY: build-installer
build-installer: manifests generate kustomize ## Render dist/install.yaml (CRDs, RBAC, manager, webhooks) for image IMG; sources untouched.
	mkdir -p dist
	"$(KUSTOMIZE)" build config/default | sed 's|image: controller:latest|image: $(IMG)|' > dist/install.yaml

.PHONY: image
image: ## Build the manager's multi-arch OCI image (IMAGE_PLATFORMS) into dist/image, offline, no Docker.
	go run ./hack/release image --version $(RELEASE) --ref $(IMG) --platforms $(IMAGE_PLATFORMS) --out dist/image

.PHONY: plugin-archives
plugin-archives: ## Build the kubectl plugin's archives (PLUGIN_PLATFORMS) and krew manifest into dist/plugin.
	go run ./hack/release plugins --version $(RELEASE) --platforms $(PLUGIN_PLATFORMS) --out dist/plugin

##@ Deployment

ifndef ignore-not-found
  ignore-not-found = false
endif

.PHONY: install
install: manifests kustomize ## Install CRDs into the K8s cluster specified in ~/.kube/config.
	@out="$$( "$(KUSTOMIZE)" build config/crd 2>/dev/null || true )"; \
	if [ -n "$$out" ]; then echo "$$out" | "$(KUBECTL)" apply -f -; else echo "No CRDs to install; skipping."; fi

.PHONY: uninstall
uninstall: manifests kustomize ## Uninstall CRDs from the K8s cluster specified in ~/.kube/config. Call with ignore-not-found=true to ignore resource not found errors during deletion.
	@out="$$( "$(KUSTOMIZE)" build config/crd 2>/dev/null || true )"; \
	if [ -n "$$out" ]; then echo "$$out" | "$(KUBECTL)" delete --ignore-not-found=$(ignore-not-found) -f -; else echo "No CRDs to delete; skipping."; fi

.PHONY: deploy
deploy: manifests kustomize ## Deploy controller to the K8s cluster specified in ~/.kube/config.
	"$(KUSTOMIZE)" build config/default | sed 's|image: controller:latest|image: $(IMG)|' | "$(KUBECTL)" apply -f -

.PHONY: undeploy
undeploy: kustomize ## Undeploy controller from the K8s cluster specified in ~/.kube/config. Call with ignore-not-found=true to ignore resource not found errors during deletion.
	"$(KUSTOMIZE)" build config/default | "$(KUBECTL)" delete --ignore-not-found=$(ignore-not-found) -f -

##@ Dependencies

## Location to install dependencies to
LOCALBIN ?= $(shell pwd)/bin
$(LOCALBIN):
	mkdir -p "$(LOCALBIN)"

## Tool Binaries
KUBECTL ?= $(shell command -v kubectl 2>/dev/null || echo $(LOCALBIN)/k8s-v1.37.2/kubectl)
KUSTOMIZE ?= $(LOCALBIN)/kustomize
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
GOLANGCI_LINT = $(LOCALBIN)/golangci-lint

## Tool Versions
KUSTOMIZE_VERSION ?= v5.8.1
CONTROLLER_TOOLS_VERSION ?= v0.23.0

GOLANGCI_LINT_VERSION ?= v2.15.0
.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Download kustomize locally if necessary.
$(KUSTOMIZE): $(LOCALBIN)
	$(call go-install-tool,$(KUSTOMIZE),sigs.k8s.io/kustomize/kustomize/v5,$(KUSTOMIZE_VERSION))

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Download controller-gen locally if necessary.
$(CONTROLLER_GEN): $(LOCALBIN)
	$(call go-install-tool,$(CONTROLLER_GEN),sigs.k8s.io/controller-tools/cmd/controller-gen,$(CONTROLLER_TOOLS_VERSION))

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Download golangci-lint locally if necessary.
$(GOLANGCI_LINT): $(LOCALBIN)
	$(call go-install-tool,$(GOLANGCI_LINT),github.com/golangci/golangci-lint/v2/cmd/golangci-lint,$(GOLANGCI_LINT_VERSION))

# go-install-tool will 'go install' any package with custom target and name of binary, if it doesn't exist
# $1 - target path with name of binary
# $2 - package url which can be installed
# $3 - specific version of package
define go-install-tool
@[ -f "$(1)-$(3)" ] && [ "$$(readlink -- "$(1)" 2>/dev/null)" = "$(1)-$(3)" ] || { \
set -e; \
package=$(2)@$(3) ;\
echo "Downloading $${package}" ;\
rm -f "$(1)" ;\
GOBIN="$(LOCALBIN)" go install $${package} ;\
mv "$(LOCALBIN)/$$(basename "$(1)")" "$(1)-$(3)" ;\
} ;\
ln -sf "$$(realpath "$(1)-$(3)")" "$(1)"
endef

define gomodver
$(shell go list -m -f '{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}' $(1) 2>/dev/null)
endef

.PHONY: chart
chart: manifests kustomize ## Regenerate the Helm chart's CRDs, RBAC, webhook, rules, dashboard and README from config/.
	go run ./hack/chart --default <("$(KUSTOMIZE)" build config/default) \
		--prometheus <("$(KUSTOMIZE)" build config/prometheus) --out charts/tminus
