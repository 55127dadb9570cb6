/**
 * A pipeline name in the form KFP gives it in Kubernetes: the v1 compiler's sanitize_k8s_name
 * (lowercase; every run of characters other than a-z, 0-9 and '-' becomes one '-'; repeated '-'
 * collapse; no '-' at either end). "Save Most Frequent" → "save-most-frequent", the prefix of the
 * Workflow's generateName; a v2 name such as "hello-world" is its own k8s name.
 */
export function k8sName(name: string): string {
  return name
    .toLowerCase()
    .replace(/[^-0-9a-z]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-+|-+$/g, '');
}

/** A string that is already in that form (a filter written as such names it unambiguously). */
export function isK8sName(s: string): boolean {
  return s !== '' && k8sName(s) === s;
}
