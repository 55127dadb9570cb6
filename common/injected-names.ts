/**
 * Names the injector adds to a Workflow; the callback reads them back from the Workflow's status (both halves import them). A Workflow that already uses one of them is skipped
 * (a collision), never overwritten.
 */
export const HOOK_TEMPLATE = 'kfp-notify-hook';
export const EXIT_TEMPLATE = 'kfp-notify-exit';
export const RUNNING_HOOK = 'kfp-notify-running';
/** Inside EXIT_TEMPLATE: the task that runs the pipeline's own exit handler, when it has one. */
export const USER_EXIT_TASK = 'user-exit';
/** Inside EXIT_TEMPLATE: the task that sends the workflow-exit call, when there is no user exit handler. */
export const NOTIFY_TASK = 'notify';
