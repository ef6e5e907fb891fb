package v1alpha1

// The labels and annotations tminus reads and writes on the Deployments it gates. They
// are the contract between the admission webhook, the controller and the user.
const (
	// GatedLabel marks a gated Deployment: the admission webhook sees only Deployments
	// carrying it (object selector) with one of the values below. Set it to "true" in
	// Git to hold every template change from the first write; tminus sets "checklist"
	// itself while a checklist needs it and removes only that value. Any other value
	// (e.g. "off") turns the admission gate off for that Deployment: the break-glass.
	GatedLabel = "deploy.tminus.dev/gated"
	// GatedByUser is the value a user sets.
	GatedByUser = "true"
	// GatedByChecklist is the value tminus sets while a checklist is live on the
	// Deployment, or guards a template it rolled back.
	GatedByChecklist = "checklist"

	// HeldByAnnotation says that tminus paused the Deployment and on whose behalf:
	// "checklist/<name>" for a checklist's hold before T-0 or a change held during its
	// verification, "admission" for a change held at admission. tminus only ever
	// resumes a Deployment carrying it.
	HeldByAnnotation = "deploy.tminus.dev/held-by"
	// HoldReasonAnnotation says in a sentence why the Deployment is held and how to go on.
	HoldReasonAnnotation = "deploy.tminus.dev/hold-reason"
	// HeldTemplateAnnotation identifies the pod template a held change was held on
	// (set for changes, not for a checklist's hold before T-0): the hold comes off by
	// itself only once the Deployment holds another template it ran before.
	HeldTemplateAnnotation = "deploy.tminus.dev/held-template"
	// HeldByAdmission is HeldByAnnotation's value for a change held at admission.
	HeldByAdmission = "admission"

	// ReleasedRevisionsAnnotation lists, newest first and comma-separated, the last
	// revisions tminus released on the Deployment. A checklist of one of them that
	// starts afresh (re-applied from Git with an empty status) has nothing to release
	// and never pauses the Deployment again.
	ReleasedRevisionsAnnotation = "deploy.tminus.dev/released-revisions"
	// MaxReleasedRevisions bounds ReleasedRevisionsAnnotation.
	MaxReleasedRevisions = 20

	// RolledBackAnnotation names the template tminus last rolled back on the
	// Deployment and the checklist that did: "<checklist>/<checklist uid>/<template
	// hash>". The rollback writes it in the same patch as the restored template, so the
	// admission webhook refuses the rolled-back template again even where its cache
	// does not show the rollback yet. It refuses only while that checklist exists;
	// RefusedTemplatesAnnotation is what outlives it.
	RolledBackAnnotation = "deploy.tminus.dev/rolled-back"

	// RefusedTemplatesAnnotation lists the pod templates checklists rolled back on the
	// Deployment, newest first, as JSON: [{"hash":"<template hash>","checklist":"<name>",
	// "uid":"<checklist uid>","at":"<RFC 3339>"}], at most MaxRefusedTemplates. The
	// rollback writes its entry in the same patch as the restored template, and the
	// admission webhook refuses every template listed whether or not the checklist that
	// rolled it back still exists (deleted by hand or by the history limit). Only a
	// writer with the verb UnrefuseVerb on deploymentchecklists in the Deployment's
	// namespace may take an entry out (allow the template again): the webhook puts back
	// an entry anyone else's write drops, and says so in a warning.
	RefusedTemplatesAnnotation = "deploy.tminus.dev/refused-templates"
	// MaxRefusedTemplates bounds RefusedTemplatesAnnotation: a rollback past it drops
	// the oldest entry.
	MaxRefusedTemplates = 20
	// UnrefuseVerb is the RBAC verb, on deploymentchecklists in the Deployment's
	// namespace, that lets a writer take a template out of RefusedTemplatesAnnotation.
	UnrefuseVerb = "unrefuse"
)

// HeldByChecklist is HeldByAnnotation's value for a hold made for the named checklist.
func HeldByChecklist(name string) string { return "checklist/" + name }
