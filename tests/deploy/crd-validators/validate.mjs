// Validates the custom resources in rendered manifests (JSON arrays, one file per argument) against validators
// that @kubernetes-models generates from the prometheus-operator and KEDA CRD schemas: the checks an API server
// with those CRDs installed would make (types, enums, patterns, required fields). Unknown fields are not errors
// there (the API server prunes them), so they are not here either. Exit status 1 when any resource is invalid.
import { readFileSync } from "node:fs";
import { PrometheusRule, ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1";

const models = {
  "monitoring.coreos.com/v1 ServiceMonitor": ServiceMonitor,
  "monitoring.coreos.com/v1 PrometheusRule": PrometheusRule,
  "keda.sh/v1alpha1 ScaledObject": ScaledObject,
};

let valid = 0;
let invalid = 0;
for (const file of process.argv.slice(2)) {
  for (const resource of JSON.parse(readFileSync(file, "utf8"))) {
    const Model = resource && models[`${resource.apiVersion} ${resource.kind}`];
    if (!Model) continue;
    try {
      new Model(resource).validate();
      valid += 1;
    } catch (error) {
      invalid += 1;
      console.log(`${file} - ${resource.kind} ${resource.metadata?.name} is invalid: ${error.message}`);
    }
  }
}
console.log(`custom resources: ${valid} valid, ${invalid} invalid`);
process.exit(invalid > 0 ? 1 : 0);
