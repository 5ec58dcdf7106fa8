//! Which Ingresses are ours: IngressClass ownership, the legacy annotation and the default class.

use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use std::collections::BTreeSet;
use std::sync::Arc;

/// The legacy class annotation that predates `spec.ingressClassName`.
pub const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
/// Marks an IngressClass as the cluster's default for Ingresses that name no class.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

/// The class names this controller answers for, worked out once per build.
#[derive(Clone, Debug, Default)]
pub struct OurClasses {
    names: BTreeSet<String>,
    takes_classless: bool,
}

impl OurClasses {
    /// Our classes are the IngressClasses whose `spec.controller` is `controller_name`, plus
    /// `fallback_class` unless an IngressClass of that name belongs to another controller.
    /// Ingresses without a class are ours when one of our classes is marked default, or when
    /// `watch_without_class` is set.
    pub fn new(
        classes: &[Arc<IngressClass>],
        controller_name: &str,
        fallback_class: &str,
        watch_without_class: bool,
    ) -> Self {
        let mut names = BTreeSet::new();
        let mut takes_classless = watch_without_class;
        let mut fallback_taken_by_other = false;
        for class in classes {
            let Some(name) = class.metadata.name.as_deref() else {
                continue;
            };
            let controller = class.spec.as_ref().and_then(|s| s.controller.as_deref());
            if controller == Some(controller_name) {
                names.insert(name.to_owned());
                let is_default = class
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                    .is_some_and(|v| v == "true");
                takes_classless |= is_default;
            } else if name == fallback_class {
                fallback_taken_by_other = true;
            }
        }
        if !fallback_class.is_empty() && !fallback_taken_by_other {
            names.insert(fallback_class.to_owned());
        }
        OurClasses {
            names,
            takes_classless,
        }
    }

    /// Whether `ingress` is ours: its `spec.ingressClassName` first, then the legacy annotation,
    /// then the default-class rule for Ingresses that name no class at all.
    pub fn owns(&self, ingress: &Ingress) -> bool {
        let by_field = ingress
            .spec
            .as_ref()
            .and_then(|s| s.ingress_class_name.as_deref());
        let by_annotation = || {
            ingress
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(LEGACY_CLASS_ANNOTATION))
                .map(String::as_str)
        };
        match by_field.or_else(by_annotation) {
            Some(class) => self.names.contains(class),
            None => self.takes_classless,
        }
    }
}
