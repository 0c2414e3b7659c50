# lme4 reference fits for tests/analysis/test_lme4_reference.py (run once; no R at test time).
#
#   Rscript tests/reference/glmer_reference.R      (from the repository root; Debian: r-base-core r-cran-lme4)
#
# For each reference_<name>.csv (written by make_datasets.py) and each outcome (net = chose the target's
# region, decided = did not answer "can't decide"), fits glmer (Laplace, nAGQ = 1) with
#   base: y ~ spade + (1 | rater_id) + (1 | item_id)
#   task: y ~ spade + (1 | rater_id) + (1 | item_id) + (1 | task_id) + (1 | item_id:condition)
# and writes glmer_reference.csv: the SPADE coefficient, its Wald SE, z, the random-intercept SDs,
# whether the fit is singular, and the versions of R and lme4.
suppressPackageStartupMessages(library(lme4))
here <- "tests/reference"
names <- c("paper", "planner_k2", "paper_like", "strong_raters")
formulas <- list(
  base = "y ~ spade + (1 | rater_id) + (1 | item_id)",
  task = "y ~ spade + (1 | rater_id) + (1 | item_id) + (1 | task_id) + (1 | item_id:condition)"
)
sd_of <- function(vc, grp) {
  v <- vc[vc$grp == grp, "sdcor"]
  if (length(v) == 0) NA_real_ else v
}
rows <- list()
for (name in names) {
  d <- read.csv(file.path(here, paste0("reference_", name, ".csv")), stringsAsFactors = TRUE)
  for (outcome in c("net", "decided")) {
    d$y <- if (outcome == "net") d$correct_region else d$decided
    for (model in names(formulas)) {
      fit <- glmer(as.formula(formulas[[model]]), data = d, family = binomial,
                   control = glmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5)))
      co <- summary(fit)$coefficients
      vc <- as.data.frame(VarCorr(fit))
      rows[[length(rows) + 1]] <- data.frame(
        dataset = name, outcome = outcome, model = model, n = nrow(d),
        estimate = co["spade", "Estimate"], se = co["spade", "Std. Error"], z = co["spade", "z value"],
        rater_sd = sd_of(vc, "rater_id"), item_sd = sd_of(vc, "item_id"),
        task_sd = sd_of(vc, "task_id"), item_condition_sd = sd_of(vc, "item_id:condition"),
        singular = isSingular(fit), r_version = paste(R.version$major, R.version$minor, sep = "."),
        lme4_version = as.character(packageVersion("lme4")))
    }
  }
}
out <- do.call(rbind, rows)
write.csv(out, file.path(here, "glmer_reference.csv"), row.names = FALSE)
print(out[, c("dataset", "outcome", "model", "estimate", "se", "rater_sd", "item_sd", "task_sd", "item_condition_sd", "singular")])
