//! The models list (`GET /v1/models`).

use serde::{Deserialize, Serialize};

use super::Extra;
use super::embeddings::list_object;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelList {
    #[serde(default = "list_object")]
    pub object: String,
    pub data: Vec<Model>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub id: String,
    #[serde(default = "model_object")]
    pub object: String,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub owned_by: String,
    #[serde(flatten)]
    pub extra: Extra,
}

fn model_object() -> String {
    "model".to_string()
}

impl Model {
    pub fn new(id: impl Into<String>, owned_by: impl Into<String>) -> Self {
        Model {
            id: id.into(),
            object: model_object(),
            created: 0,
            owned_by: owned_by.into(),
            extra: Extra::new(),
        }
    }
}
