/**
 * Names the injector adds to a Workflow. A Workflow that already uses one of them is skipped
 * (a collision), never overwritten.
 */
export const HOOK_TEMPLATE = 'kfp-notify-hook';
export const EXIT_TEMPLATE = 'kfp-notify-exit';
export const RUNNING_HOOK = 'kfp-notify-running';
/** Inside EXIT_TEMPLATE: the task that runs the pipeline's own exit handler, when it has one. */
export const USER_EXIT_TASK = 'user-exit';
/** Inside EXIT_TEMPLATE: the task that sends the workflow-exit call, when there is no user exit handler. */
export const NOTIFY_TASK = 'notify';

export const KFP_PIPELINE_SPEC_ANNOTATION = 'pipelines.kubeflow.org/pipeline_spec';
export const KFP_TASK_DISPLAY_NAME_ANNOTATION = 'pipelines.kubeflow.org/task_display_name';
export const KFP_COMPONENT_SPEC_ANNOTATION = 'pipelines.kubeflow.org/component_spec';
export const KFP_V2_COMPONENT_LABEL = 'pipelines.kubeflow.org/v2_component';
