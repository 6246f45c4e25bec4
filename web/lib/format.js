/** How times and durations read on the page. */

const dateTime = new Intl.DateTimeFormat(undefined, {
  year: 'numeric',
  month: 'short',
  day: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
});

/** A `<time>` element with the ISO value machine-readable and the local time readable. */
export function formatTime(iso) {
  return iso ? dateTime.format(new Date(iso)) : '—';
}

/** 0.4 s, 42 s, 12 min, 3 h 5 min, 2 d 4 h. */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return '—';
  if (seconds < 10) return `${Math.max(0, seconds).toFixed(1)} s`;
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const hours = Math.floor(m / 60);
  if (hours < 24) return m % 60 ? `${hours} h ${m % 60} min` : `${hours} h`;
  const days = Math.floor(hours / 24);
  return hours % 24 ? `${days} d ${hours % 24} h` : `${days} d`;
}

/** Seconds between two ISO times (the second defaults to now). */
export function secondsBetween(fromIso, toIso) {
  return ((toIso ? Date.parse(toIso) : Date.now()) - Date.parse(fromIso)) / 1000;
}

/** `5 min ago`. */
export function formatAge(iso) {
  return `${formatDuration(secondsBetween(iso))} ago`;
}

export const SEVERITY_NAMES = {
  SEV1: 'SEV1 critical',
  SEV2: 'SEV2 major',
  SEV3: 'SEV3 minor',
  SEV4: 'SEV4 low',
};

/** `INVESTIGATING` → `Investigating`. */
export function statusName(status) {
  return status.charAt(0) + status.slice(1).toLowerCase();
}
