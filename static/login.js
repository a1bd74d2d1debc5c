// OnAir log in / create account. Field errors come from the server's
// `error.fields`; on success the page goes to `?next=` (same origin) or `/`.

import { $, $$, describeError, safeNext } from './common.js';
import { api, saveLogin, currentUser, logout } from './session.js';

const params = new URLSearchParams(window.location.search);
const next = safeNext(params.get('next'), '/');

const els = {
  already: $('#already'),
  alreadyName: $('#already-name'),
  cont: $('#continue'),
  switchBtn: $('#switch'),
  forms: $('#forms'),
  tabLogin: $('#tab-login'),
  tabRegister: $('#tab-register'),
  login: $('#login-form'),
  register: $('#register-form'),
  error: $('#form-error'),
  errorText: $('#form-error-text'),
};

const onair = { page: 'login', next, mode: 'login', error: null, user: null };
window.onair = onair;

function setMode(mode, { focus = true } = {}) {
  onair.mode = mode;
  const reg = mode === 'register';
  els.login.hidden = reg;
  els.register.hidden = !reg;
  els.tabLogin.setAttribute('aria-selected', String(!reg));
  els.tabRegister.setAttribute('aria-selected', String(reg));
  document.title = reg ? 'Create account · OnAir' : 'Log in · OnAir';
  clearErrors();
  if (focus) (reg ? $('#reg-username') : $('#login-username')).focus();
}

function clearErrors() {
  els.error.hidden = true;
  onair.error = null;
  for (const el of $$('.field-error')) {
    el.hidden = true;
    el.textContent = '';
  }
  for (const el of $$('[aria-invalid]')) el.removeAttribute('aria-invalid');
}

function showErrors(form, err) {
  onair.error = { code: err.code, status: err.status, message: err.message, fields: err.fields };
  let firstBad = null;
  const fields = err.fields || {};
  for (const [name, msg] of Object.entries(fields)) {
    const slot = form.querySelector(`.field-error[data-for="${name}"]`);
    const input = form.querySelector(`[name="${name}"]`);
    if (slot) {
      slot.textContent = msg.charAt(0).toUpperCase() + msg.slice(1);
      slot.hidden = false;
    }
    if (input) {
      input.setAttribute('aria-invalid', 'true');
      firstBad = firstBad || input;
    }
  }
  // Fields with a slot are shown next to them; everything else goes on top.
  const unplaced = Object.keys(fields).filter((n) => !form.querySelector(`.field-error[data-for="${n}"]`));
  if (!Object.keys(fields).length || unplaced.length) {
    els.errorText.textContent = describeError(err);
    els.error.hidden = false;
  } else if (err.code !== 'validation') {
    els.errorText.textContent = describeError(err);
    els.error.hidden = false;
  }
  // A taken username or email (409) names no field: point at the likely one.
  if (err.status === 409 && !Object.keys(fields).length) {
    const which = /email/i.test(err.message) ? 'email' : 'username';
    const input = form.querySelector(`[name="${which}"]`);
    if (input) {
      input.setAttribute('aria-invalid', 'true');
      firstBad = input;
    }
  }
  if (firstBad) firstBad.focus();
}

function busy(form, on) {
  const btn = form.querySelector('button[type="submit"]');
  btn.disabled = on;
  btn.querySelector('.spinner').hidden = !on;
  for (const input of form.querySelectorAll('input')) input.readOnly = on;
}

function done(pair) {
  saveLogin(pair);
  onair.user = pair.user;
  window.location.assign(next);
}

els.login.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  clearErrors();
  const f = new FormData(els.login);
  const body = { username: String(f.get('username') || '').trim(), password: String(f.get('password') || '') };
  const missing = {};
  if (!body.username) missing.username = 'enter your username or email';
  if (!body.password) missing.password = 'enter your password';
  if (Object.keys(missing).length) {
    showErrors(els.login, { code: 'validation', message: 'Fill in both fields.', fields: missing });
    return;
  }
  busy(els.login, true);
  try {
    done(await api('/api/auth/login', { method: 'POST', body, auth: false }));
  } catch (err) {
    busy(els.login, false);
    showErrors(els.login, err);
    if (err.code === 'bad_credentials') $('#login-password').select();
  }
});

els.register.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  clearErrors();
  const f = new FormData(els.register);
  const body = {
    username: String(f.get('username') || '').trim().toLowerCase(),
    email: String(f.get('email') || '').trim(),
    password: String(f.get('password') || ''),
    role: f.get('role') === 'host' ? 'host' : 'viewer',
  };
  const display = String(f.get('display_name') || '').trim();
  if (display) body.display_name = display;
  busy(els.register, true);
  try {
    done(await api('/api/auth/register', { method: 'POST', body, auth: false }));
  } catch (err) {
    busy(els.register, false);
    showErrors(els.register, err);
  }
});

els.tabLogin.addEventListener('click', () => setMode('login'));
els.tabRegister.addEventListener('click', () => setMode('register'));
$('#to-register').addEventListener('click', (ev) => {
  ev.preventDefault();
  setMode('register');
});
$('#to-login').addEventListener('click', (ev) => {
  ev.preventDefault();
  setMode('login');
});
// Arrow keys move between the tabs.
for (const tab of [els.tabLogin, els.tabRegister]) {
  tab.addEventListener('keydown', (ev) => {
    if (ev.key === 'ArrowRight' || ev.key === 'ArrowLeft') {
      setMode(onair.mode === 'login' ? 'register' : 'login', { focus: false });
      (onair.mode === 'login' ? els.tabLogin : els.tabRegister).focus();
    }
  });
}

els.switchBtn.addEventListener('click', async () => {
  els.switchBtn.disabled = true;
  await logout();
  els.already.hidden = true;
  els.forms.hidden = false;
  setMode('login');
});

const me = currentUser();
if (me) {
  els.alreadyName.textContent = `${me.display_name || me.username} (@${me.username})`;
  els.cont.href = next;
  els.already.hidden = false;
  els.forms.hidden = true;
  onair.user = me;
} else {
  setMode(window.location.hash === '#register' || params.get('mode') === 'register' ? 'register' : 'login', { focus: true });
}
