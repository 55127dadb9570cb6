/**
 * The dashboard's two HTML documents. No inline script or style (the Content-Security-Policy forbids
 * both) and nothing from the request in them: everything dynamic is fetched by app.js and rendered as
 * text nodes.
 */

const head = (title: string) => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>${title}</title>
<link rel="stylesheet" href="/ui/app.css">
</head>`;

/** The login form; `failed` adds a fixed message (the token that was given is never echoed). */
export function loginPage(failed: boolean): string {
  return `${head('kfp-notify: log in')}
<body class="login">
<main>
<h1>kfp-notify deliveries</h1>
<form method="post" action="/ui/login" autocomplete="off">
${failed ? '<p class="error" role="alert">That is not the admin token.</p>\n' : ''}<label>Your name (for the audit log)<input name="operator" maxlength="64" autocomplete="username"></label>
<label>Admin token<input name="token" type="password" required autocomplete="current-password"></label>
<button type="submit">Log in</button>
</form>
<p class="hint">The admin token is in the callback's data dir (<code>admin-token</code>) or its Secret.</p>
</main>
</body>
</html>
`;
}

export const APP_PAGE = `${head('kfp-notify: deliveries')}
<body>
<header>
<h1>kfp-notify deliveries</h1>
<nav><a href="#/events" id="nav-events">Events</a><a href="#/subscribers" id="nav-subscribers">Subscribers</a></nav>
<span id="who"></span>
<button type="button" id="logout">Log out</button>
</header>
<p id="status" role="status"></p>
<main id="view"></main>
<script type="module" src="/ui/app.js"></script>
</body>
</html>
`;
