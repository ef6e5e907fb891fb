package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// TemplateParameter is one {{params.NAME}} a template takes.
type TemplateParameter struct {
	// name of the parameter, as {{params.NAME}} writes it.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=40
	// +kubebuilder:validation:Pattern=`^[A-Za-z][A-Za-z0-9_]*$`
	// +required
	Name string `json:"name"`

	// default is the value when a checklist does not set the parameter. Without it, every
	// checklist must set it.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Default *string `json:"default,omitempty"`

	// description says what the parameter is for.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Description string `json:"description,omitempty"`
}

// ChecklistTemplateSpec is a checklist without its release: what a platform team writes
// once, and every release names with a templateRef and its parameters.
// +kubebuilder:validation:XValidation:rule="has(self.template.phases)",message="spec.template.phases is required"
type ChecklistTemplateSpec struct {
	// parameters the template takes: {{params.NAME}} may stand in any threshold,
	// duration, query, URL or Job argument of the template.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=32
	// +optional
	Parameters []TemplateParameter `json:"parameters,omitempty"`

	// template is the checklist: gate, interval, prometheus, metrics, phases, rollback
	// triggers. The release (target, revision, deployAt, window) is the checklist's.
	// +required
	Template ChecklistBody `json:"template"`
}

// ChecklistTemplate is a checklist a namespace's releases are made from.
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=dclt,categories=tminus
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ChecklistTemplate struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard object's metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// spec is the template.
	// +required
	Spec ChecklistTemplateSpec `json:"spec"`
}

// +kubebuilder:object:root=true

// ChecklistTemplateList contains a list of ChecklistTemplate.
type ChecklistTemplateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ChecklistTemplate `json:"items"`
}

// ClusterChecklistTemplate is a checklist every namespace's releases may be made from:
// what a platform team writes once. Secrets it names are read in the checklist's
// namespace, never the template's or the manager's.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=cdclt,categories=tminus
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterChecklistTemplate struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard object's metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// spec is the template.
	// +required
	Spec ChecklistTemplateSpec `json:"spec"`
}

// +kubebuilder:object:root=true

// ClusterChecklistTemplateList contains a list of ClusterChecklistTemplate.
type ClusterChecklistTemplateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterChecklistTemplate `json:"items"`
}

func init() {
	SchemeBuilder.Register(func(s *runtime.Scheme) error {
		s.AddKnownTypes(SchemeGroupVersion, &ChecklistTemplate{}, &ChecklistTemplateList{},
			&ClusterChecklistTemplate{}, &ClusterChecklistTemplateList{})
		return nil
	})
}
