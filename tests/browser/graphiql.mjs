// End-to-end check of quire's GraphiQL page in headless Chromium.
//
//   node tests/browser/graphiql.mjs <quire-base-url> <screenshot.png>
//
// Environment: E2E_EMAIL, E2E_PASSWORD, E2E_USERNAME (an existing account), and
// optionally CHROMIUM (the browser binary; /usr/bin/chromium by default).
//
// It signs in with the login mutation, puts the access token into the headers editor,
// runs `{ me { username email } }`, checks the rendered result and takes a screenshot.
// Any page error, console error, CSP violation or failed request fails the run.

import { chromium } from 'playwright-core';

const STEP_TIMEOUT_MS = 30_000;

const QUERY_EDITOR = '.graphiql-query-editor .CodeMirror';
const RESULT_EDITOR = '.result-window .CodeMirror';
const EXECUTE_BUTTON = 'button.graphiql-execute-button';

function usage(message) {
  console.error(`graphiql e2e: ${message}`);
  console.error(
    'usage: E2E_EMAIL=… E2E_PASSWORD=… E2E_USERNAME=… node tests/browser/graphiql.mjs <quire-base-url> <screenshot.png>',
  );
  process.exit(2);
}

const [baseArg, screenshotPath] = process.argv.slice(2);
if (!baseArg || !screenshotPath) usage('missing arguments');
const { E2E_EMAIL: email, E2E_PASSWORD: password, E2E_USERNAME: username } = process.env;
if (!email || !password || !username) usage('E2E_EMAIL, E2E_PASSWORD and E2E_USERNAME must be set');
let pageUrl;
try {
  pageUrl = new URL('/graphql', baseArg.replace(/\/+$/, '') + '/').href;
} catch {
  usage(`not a URL: ${baseArg}`);
}
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

// The first problem the page reports ends the run: `problem` rejects once, and every
// step races against it.
let reportProblem;
const problem = new Promise((_, reject) => {
  reportProblem = (message) => reject(new Error(message));
});
problem.catch(() => {});
const problems = [];
function fail(message) {
  problems.push(message);
  reportProblem(message);
}

async function step(name, action) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${STEP_TIMEOUT_MS / 1000} s: ${name}`)),
      STEP_TIMEOUT_MS,
    );
  });
  try {
    return await Promise.race([action(), timeout, problem]);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(message.startsWith('timed out') ? message : `${name}: ${message}`);
  } finally {
    clearTimeout(timer);
  }
}

function describeRequest(request) {
  return `${request.method()} ${request.url()}`;
}

async function run(browser) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();

  page.on('pageerror', (error) => fail(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') {
      fail(`console error: ${message.text()}`);
    }
  });
  page.on('requestfailed', (request) => {
    fail(`request failed: ${describeRequest(request)}: ${request.failure()?.errorText ?? 'unknown error'}`);
  });
  page.on('response', (response) => {
    if (response.status() >= 400) {
      fail(`request failed: ${describeRequest(response.request())}: HTTP ${response.status()}`);
    }
  });
  await page.exposeFunction('__e2eCspViolation', (violation) => {
    fail(
      `CSP violation: ${violation.directive} blocked ${violation.blockedURI || '(inline)'}` +
        (violation.sourceFile ? ` at ${violation.sourceFile}:${violation.lineNumber}` : '') +
        (violation.sample ? ` (${violation.sample})` : ''),
    );
  });
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (event) => {
      window.__e2eCspViolation({
        directive: event.effectiveDirective || event.violatedDirective,
        blockedURI: event.blockedURI,
        sourceFile: event.sourceFile,
        lineNumber: event.lineNumber,
        sample: event.sample,
      });
    });
  });

  await step(`open ${pageUrl}`, async () => {
    const response = await page.goto(pageUrl, { waitUntil: 'load', timeout: STEP_TIMEOUT_MS });
    if (!response) throw new Error('no response');
    if (!response.ok()) throw new Error(`HTTP ${response.status()}`);
    const type = response.headers()['content-type'] ?? '';
    if (!type.includes('text/html')) throw new Error(`expected an HTML page, got ${type || 'no content type'}`);
    if (!response.headers()['content-security-policy']) {
      throw new Error('the page came without a Content-Security-Policy header');
    }
  });

  await step('wait for GraphiQL to render', async () => {
    await page.waitForSelector(QUERY_EDITOR, { state: 'visible', timeout: STEP_TIMEOUT_MS });
    await page.waitForSelector(RESULT_EDITOR, { state: 'attached', timeout: STEP_TIMEOUT_MS });
    await page.waitForSelector(EXECUTE_BUTTON, { state: 'visible', timeout: STEP_TIMEOUT_MS });
    const title = await page.title();
    if (title !== 'quire GraphiQL') throw new Error(`unexpected page title ${JSON.stringify(title)}`);
  });

  // The headers editor is the visible editor in the editor tools pane.
  const headersEditor = await step('find the headers editor', async () => {
    const editor = page
      .locator('.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror')
      .first();
    await editor.waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
    const label = await page.locator('.graphiql-editor-tool').getAttribute('aria-label');
    if (label !== 'Headers') {
      throw new Error(`the editor tools show ${JSON.stringify(label)}, not the headers editor`);
    }
    return editor;
  });

  const setEditor = (locator, value) =>
    locator.evaluate((element, text) => {
      const editor = element.CodeMirror;
      if (!editor) throw new Error('no CodeMirror instance on the editor element');
      editor.setValue(text);
      editor.focus();
    }, value);

  // Sets the query, and waits until GraphiQL has parsed it (it does so shortly after
  // each change), so that a run sends this document and its operation name.
  async function setQuery(text) {
    const editor = page.locator(QUERY_EDITOR);
    await setEditor(editor, text);
    await page.waitForFunction(
      ([selector, expected]) => {
        const instance = document.querySelector(selector)?.CodeMirror;
        return instance?.documentAST?.loc?.source?.body === expected;
      },
      [QUERY_EDITOR, text],
      { timeout: STEP_TIMEOUT_MS },
    );
  }

  const resultText = () =>
    page.locator(RESULT_EDITOR).evaluate((element) => element.CodeMirror.getValue());

  const renderedResult = () =>
    page.locator(`${RESULT_EDITOR} .CodeMirror-code`).evaluate((element) => element.innerText);

  async function execute() {
    await setEditor(page.locator(RESULT_EDITOR), '');
    await page.locator(EXECUTE_BUTTON).click();
  }

  // Waits until the result pane holds a complete JSON response, and returns it.
  async function waitForResponse(accept) {
    for (;;) {
      const text = await resultText();
      if (text.trim() !== '') {
        let response = null;
        try {
          response = JSON.parse(text);
        } catch {
          // Still being written, or not JSON at all: wait for more.
        }
        if (response) {
          if (response.errors?.length) {
            throw new Error(`the server answered with errors: ${JSON.stringify(response.errors)}`);
          }
          if (accept(response, await renderedResult())) return response;
        }
      }
      await page.waitForTimeout(100);
    }
  }

  const loginMutation = `mutation Login {
  login(input: {email: ${JSON.stringify(email)}, password: ${JSON.stringify(password)}}) {
    accessToken
    refreshToken
    user {
      username
    }
  }
}
`;

  const accessToken = await step('sign in with the login mutation', async () => {
    await setQuery(loginMutation);
    await execute();
    const response = await waitForResponse(
      (json, rendered) => typeof json.data?.login?.accessToken === 'string' && rendered.includes('"accessToken"'),
    );
    const user = response.data.login.user?.username;
    if (user !== username) {
      throw new Error(`signed in as ${JSON.stringify(user)}, expected ${JSON.stringify(username)}`);
    }
    return response.data.login.accessToken;
  });

  await step('put the access token into the headers editor', async () => {
    const headers = JSON.stringify({ Authorization: `Bearer ${accessToken}` });
    await setEditor(headersEditor, headers);
    const value = await headersEditor.evaluate((element) => element.CodeMirror.getValue());
    if (value !== headers) throw new Error('the headers editor did not take the token');
  });

  await step('run { me { username email } }', async () => {
    await setQuery('{ me { username email } }');
    await execute();
    const expected = `"username": ${JSON.stringify(username)}`;
    await waitForResponse((json, rendered) => json.data?.me != null && rendered.includes(expected));
  });

  await step(`take a screenshot to ${screenshotPath}`, async () => {
    await page.screenshot({ path: screenshotPath, fullPage: true });
  });

  // Problems reported while the last step was finishing still count.
  await page.waitForTimeout(250);
  if (problems.length) throw new Error(problems[0]);
  await context.close();
}

let browser;
try {
  browser = await step(`launch ${executablePath}`, () =>
    chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'], timeout: STEP_TIMEOUT_MS }),
  );
  await run(browser);
  await browser.close();
  console.log('graphiql e2e ok');
  process.exit(0);
} catch (error) {
  console.error(`graphiql e2e failed: ${error instanceof Error ? error.message : error}`);
  const message = error instanceof Error ? error.message : String(error);
  for (const other of problems) {
    if (!message.includes(other)) console.error(`  also: ${other}`);
  }
  await browser?.close().catch(() => {});
  process.exit(1);
}
