/**
 * The dashboard's address as `npm start` prints it: the trainer's `/dashboard`, the run to show
 * (`?run=`), and the bearer token in the fragment (`#token=`), which a browser never sends to the
 * server; the page keeps it in sessionStorage and drops it from the address bar
 * (services/trainer/src/dashboard/static/dashboard.js).
 */
export function dashboardLink(trainerUrl: string, token: string, run?: string): string {
  const query = run === undefined ? "" : `?run=${encodeURIComponent(run)}`;
  return `${trainerUrl}/dashboard${query}#token=${encodeURIComponent(token)}`;
}
