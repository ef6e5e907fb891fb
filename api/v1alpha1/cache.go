package v1alpha1

// StrippedAnnotation marks a checklist as the manager's cache holds an ended one: only
// what the gate, the history limit and the watches read (internal/slim). It is never
// written to the API server; the engine refuses an object carrying it
// (checklist.WholeOf), and whatever needs the whole checklist reads it from the API
// server.
const StrippedAnnotation = "deploy.tminus.dev/cache-stripped"

// ReleaseGuardFinalizer is the finalizer earlier versions put on checklists; the
// manager only takes it off now.
const ReleaseGuardFinalizer = "deploy.tminus.dev/release-guard"
