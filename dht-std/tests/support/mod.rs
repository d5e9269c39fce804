pub mod seeder;
