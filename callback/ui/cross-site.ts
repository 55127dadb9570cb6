/**
 * Whether a state-changing request to the dashboard comes from the dashboard's own page. A browser
 * sends Origin on every POST and Sec-Fetch-Site on every request (Chromium, Firefox, Safari); the
 * page's own requests carry this server's origin and `same-origin`. Anything else (another site, a
 * sibling subdomain, a missing Origin) is refused: the CSRF token is a second, independent check.
 * Returns why it is refused, or undefined when it is not.
 */
export function crossSiteRefusal(headers: { origin?: string | undefined; host?: string | undefined; 'sec-fetch-site'?: string | string[] | undefined }, protocol: string): string | undefined {
  const site = headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin') return `cross-site request refused (Sec-Fetch-Site: ${String(site)})`;
  const origin = headers.origin;
  if (!origin) return 'cross-site request refused (no Origin header)';
  if (!headers.host || origin !== `${protocol}://${headers.host}`) return 'cross-site request refused (Origin is not this server)';
  return undefined;
}
