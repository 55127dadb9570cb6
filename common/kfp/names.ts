/** Labels and annotations KFP itself writes on the Workflows it submits (argo-kfp.md §4). */
export const KFP_PIPELINE_SPEC_ANNOTATION = 'pipelines.kubeflow.org/pipeline_spec';
export const KFP_TASK_DISPLAY_NAME_ANNOTATION = 'pipelines.kubeflow.org/task_display_name';
export const KFP_COMPONENT_SPEC_ANNOTATION = 'pipelines.kubeflow.org/component_spec';
export const KFP_V2_COMPONENT_LABEL = 'pipelines.kubeflow.org/v2_component';
