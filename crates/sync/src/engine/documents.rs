//! Heroku Connect's mapping export document, as engine operations.
//!
//! Import checks every mapping against the org (objects, fields, upsert fields), creates
//! the tables, and keeps each mapping's `config` object and the `connection` block
//! verbatim in the catalog; running engines then sync the imported mappings. Export
//! writes a connection's mappings — imported ones exactly as imported, the others in the
//! same shape — so import followed by export gives back the same document.

use pgforce_store::catalog::connections;
use pgforce_store::catalog::mappings::{self, Origin};
use serde_json::{Value, json};

use super::Engine;
use super::setup::{Declaring, Registration, resolve, schema_of, settings_of};
use crate::error::{Error, Result};
use crate::hc_json::{self, HcMapping};

fn catalog_error(source: pgforce_store::Error) -> Error {
    Error::catalog(source)
}

impl Engine {
    /// Imports an export document into a declared connection; returns how many mappings
    /// it holds. Nothing is registered unless every mapping fits the org.
    pub async fn import(&self, connection: &str, document: &str) -> Result<usize> {
        let document = hc_json::parse(document)?;
        let config = self
            .declared()
            .into_iter()
            .find(|c| c.name == connection)
            .ok_or_else(|| Error::NotFound {
                what: format!("no connection named {connection} is declared"),
            })?;
        let salesforce = self.client(&config)?;
        let mut resolved = Vec::with_capacity(document.mappings.len());
        for imported in &document.mappings {
            let mapping_config = hc_json::mapping_config(&imported.object_name, &imported.config)?;
            let mapping = resolve(&salesforce, connection, &mapping_config).await?;
            let text = Value::Object(imported.config.clone()).to_string();
            resolved.push((mapping, mapping_config, text));
        }
        let mut pg = self.session().await?;
        self.apply_connection(&mut pg, &config, Declaring::Upsert)
            .await?;
        let (row, _) = self.live_connection(&pg, connection).await?;
        let schema = schema_of(&config)?;
        for (mapping, mapping_config, text) in &resolved {
            let registration = Registration {
                connection: row.id,
                schema: &schema,
                mapping,
                config: mapping_config,
                origin: Origin::Import,
                imported_config: Some(text),
            };
            self.register(&mut pg, &registration).await?;
        }
        if let Some(block) = &document.connection {
            connections::save_document(&*pg, connection, &block.to_string())
                .await
                .map_err(catalog_error)?;
        }
        Ok(document.mappings.len())
    }

    /// A connection's mappings as an export document: the declared ones, then the ones
    /// imported or added at run time.
    pub async fn export(&self, connection: &str) -> Result<Value> {
        let pg = self.session().await?;
        let declared = self.declared().into_iter().find(|c| c.name == connection);
        let mut exported: Vec<HcMapping> = declared
            .iter()
            .flat_map(|c| c.mappings.iter())
            .map(|m| HcMapping {
                object_name: m.object.clone(),
                config: hc_json::config_object(m),
            })
            .collect();
        let row = connections::find(&*pg, connection)
            .await
            .map_err(catalog_error)?;
        if declared.is_none() && row.is_none() {
            return Err(Error::NotFound {
                what: format!("no connection named {connection}"),
            });
        }
        if let Some(row) = &row {
            for mapping in mappings::list(&*pg, Some(row.id))
                .await
                .map_err(catalog_error)?
            {
                let known = exported
                    .iter()
                    .any(|m| m.object_name.eq_ignore_ascii_case(&mapping.object));
                if known || mapping.origin == Origin::Config {
                    continue;
                }
                let config = match (&mapping.imported_config, mapping.origin) {
                    (Some(text), Origin::Import) => match serde_json::from_str(text) {
                        Ok(Value::Object(config)) => config,
                        _ => {
                            return Err(Error::config(
                                &mapping.object,
                                "the imported configuration is not a JSON object",
                            ));
                        }
                    },
                    _ => hc_json::config_object(&settings_of(&mapping)?),
                };
                exported.push(HcMapping {
                    object_name: mapping.object,
                    config,
                });
            }
        }
        let block = match connections::document(&*pg, connection)
            .await
            .map_err(catalog_error)?
        {
            Some(text) => serde_json::from_str(&text).map_err(|e| Error::Document {
                problem: format!("the imported connection block is not JSON: {e}"),
            })?,
            None => {
                let (api_version, schema) = declared.as_ref().map_or_else(
                    || {
                        (
                            pgforce_salesforce::DEFAULT_API_VERSION.to_owned(),
                            row.as_ref().map(|r| r.schema.clone()).unwrap_or_default(),
                        )
                    },
                    |c| (c.api_version.clone(), c.schema.clone()),
                );
                json!({
                    "app_name": "pgforce",
                    "api_version": api_version,
                    "name": format!("pgforce:DATABASE_URL:{schema}"),
                    "features": {},
                })
            }
        };
        Ok(hc_json::document(block, &exported))
    }
}
